//! Work across cores with rayon, or one item after another when the
//! `parallel` feature is off: the few shapes of parallel work the parsers
//! and writers use, so that none of them names rayon.

/// `f` of every item, in order; items are spread over the cores when the
/// feature is on.
pub(crate) fn map<T, R, F>(items: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync + Send,
{
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items.into_iter().map(f).collect()
    }
}

/// The number of threads [`map`] spreads work over.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads().max(1)
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}

/// Whether jobs given to a [`Spawner`] run on other cores.
pub(crate) const BACKGROUND: bool = cfg!(feature = "parallel");

/// Hands jobs to other cores while the caller goes on (see [`scope`]).
pub(crate) struct Spawner<'a, 'scope> {
    #[cfg(feature = "parallel")]
    scope: &'a rayon::Scope<'scope>,
    #[cfg(not(feature = "parallel"))]
    scope: std::marker::PhantomData<&'a &'scope ()>,
}

impl<'scope> Spawner<'_, 'scope> {
    /// Runs `job` on another core (or right now, without the feature).
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'scope) {
        #[cfg(feature = "parallel")]
        self.scope.spawn(move |_| job());
        #[cfg(not(feature = "parallel"))]
        job();
    }
}

/// Runs `f`, which may spawn jobs; returns once they all have finished.
pub(crate) fn scope<'scope, R>(f: impl for<'a> FnOnce(&Spawner<'a, 'scope>) -> R) -> R {
    #[cfg(feature = "parallel")]
    {
        rayon::in_place_scope(|scope| f(&Spawner { scope }))
    }
    #[cfg(not(feature = "parallel"))]
    {
        f(&Spawner {
            scope: std::marker::PhantomData,
        })
    }
}

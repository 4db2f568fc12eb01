//! The tensor loop: each tensor read, its values parsed and hashed, and
//! handed over in file order.
//!
//! A file of many small tensors (100k arrays of a few hundred values) has
//! no array worth splitting across cores, but it has many arrays: the
//! reading thread copies the text of each small array into a batch and
//! goes on with the next tensor's keys, while the batch's arrays are
//! parsed and hashed on other cores. A large array is parsed in parallel
//! pieces as it is read (`pipeline.rs`), then hashed on another core.
//! Tensors wait in file order for what is done elsewhere, and are handed
//! over in that order.
//!
//! Errors are the ones a reading in file order would give: a bad value in
//! an array is reported before any error found later in the file, even
//! though the reading thread found the later one first.

use super::*;

/// Text of small arrays gathered before they are handed to another core.
const BATCH: usize = 256 << 10;
/// Arrays with more text than this are not batched (a large one is parsed
/// in parallel pieces of its own).
const BATCH_ARRAY: usize = PARALLEL_MIN;
/// Batches being parsed elsewhere at once, at most; past it the reading
/// thread parses the next batch itself rather than wait (or pile up text).
const IN_FLIGHT: usize = 4;

/// Small arrays' text, copied out of the window, waiting to be parsed.
#[derive(Default)]
pub(super) struct Batch {
    text: Vec<u8>,
    jobs: Vec<Job>,
}

/// One array of a batch: the text from its first element to its `]`.
struct Job {
    /// The tensor's number in the file.
    index: usize,
    dtype: Dtype,
    limit: Option<usize>,
    /// The end of its text in the batch (it starts where the one before
    /// it ends).
    end: usize,
    /// The input offset of its text, for error messages.
    at: u64,
}

/// A tensor's values, parsed or hashed off the reading thread: its bytes,
/// the element count when they were parsed there, and their sha256.
pub(super) struct Done {
    index: usize,
    result: Result<(Vec<u8>, Option<usize>, [u8; 32])>,
}

impl Batch {
    /// Parses and hashes every array of the batch.
    fn run(self) -> Vec<Done> {
        let mut start = 0;
        self.jobs
            .into_iter()
            .map(|job| {
                let text = &self.text[start..job.end];
                start = job.end;
                let result = parse_array(text, job.dtype, job.limit, job.at).map(|(bytes, n)| {
                    let sum = Sha256::digest(&bytes).into();
                    (bytes, Some(n), sum)
                });
                Done {
                    index: job.index,
                    result,
                }
            })
            .collect()
    }
}

/// A whole array's elements (its text from the first element through its
/// `]`, with no string or nested value in it) as `dtype`'s bytes, and
/// their count; the same bytes and errors as parsing it in the window.
fn parse_array(
    text: &[u8],
    dtype: Dtype,
    limit: Option<usize>,
    at: u64,
) -> Result<(Vec<u8>, usize)> {
    let per = dtype.bits().div_ceil(8);
    let mut bytes = Vec::with_capacity(limit.unwrap_or(text.len() / 2).min(text.len()) * per);
    // `last`: the `]` ends the text, so no element is cut short by it.
    let step =
        stream_elements(text, dtype, &mut bytes, true).map_err(|e| e.into_read_error(0, at))?;
    debug_assert!(step.done && step.consumed == text.len());
    check_limit(step.count, limit)?;
    Ok((bytes, step.count))
}

/// What a tensor read waits for before it is handed over.
enum Wait {
    Nothing,
    /// Its hash, being computed elsewhere.
    Hash,
    /// Its values, in a batch.
    Values,
    /// Parsing its values failed.
    Failed(FormatError),
}

/// Tensors read and not yet handed over, in file order.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<(JsonTensor, Wait)>,
    /// The number in the file of the first one waiting.
    handed: usize,
    /// Jobs sent elsewhere whose results are not in.
    in_flight: usize,
}

impl Queue {
    fn next_index(&self) -> usize {
        self.handed + self.waiting.len()
    }

    /// Puts the results of a job elsewhere into the tensors they belong to.
    fn apply(&mut self, results: Vec<Done>) {
        for Done { index, result } in results {
            // Results of a tensor that failed to read have no place.
            let Some((tensor, wait)) = self.waiting.get_mut(index - self.handed) else {
                continue;
            };
            *wait = match result.and_then(|(data, count, sum)| {
                if let Some(count) = count {
                    check_count(&tensor.meta, count)?;
                }
                Ok((data, sum))
            }) {
                Ok((data, sum)) => {
                    tensor.data = data;
                    tensor.actual_sha256 = sum;
                    Wait::Nothing
                }
                Err(e) => Wait::Failed(in_tensor(e, &tensor.meta.name)),
            };
        }
    }

    /// The error of the first tensor whose values failed, if any.
    fn first_failure(&mut self) -> Option<FormatError> {
        self.waiting.drain(..).find_map(|(_, wait)| match wait {
            Wait::Failed(e) => Some(e),
            _ => None,
        })
    }

    /// Hands over the tensors at the front that wait for nothing.
    fn hand_over(&mut self, take: &mut dyn FnMut(JsonTensor) -> Result<()>) -> Result<()> {
        while let Some((_, wait)) = self.waiting.front() {
            match wait {
                Wait::Nothing => {
                    let (tensor, _) = self.waiting.pop_front().expect("a front");
                    self.handed += 1;
                    take(tensor)?;
                }
                Wait::Failed(_) => {
                    let Some((_, Wait::Failed(e))) = self.waiting.pop_front() else {
                        unreachable!("the front failed")
                    };
                    return Err(e);
                }
                Wait::Hash | Wait::Values => break,
            }
        }
        Ok(())
    }
}

/// How reading the tensors stopped early.
enum Stop {
    /// The reader found an error, in the tensor after those queued (named
    /// `name`, when the error is in its object).
    Read {
        error: FormatError,
        name: Option<String>,
    },
    /// Handing over failed: a tensor's values were bad, or `take` failed.
    Hand(FormatError),
}

impl<R: Read> Reader<R> {
    /// Reads the tensors and hands each to `take`, in file order (see the
    /// module's description).
    pub(super) fn tensors(&mut self, take: &mut dyn FnMut(JsonTensor) -> Result<()>) -> Result<()> {
        self.open_object("`tensors` to be an object mapping names to tensors")?;
        let (done, results) = mpsc::channel::<Vec<Done>>();
        let mut queue = Queue::default();
        let read = par::scope(|scope| {
            let send = |batch: Batch, queue: &mut Queue| {
                if queue.in_flight < IN_FLIGHT {
                    queue.in_flight += 1;
                    let done = done.clone();
                    // The receiver is gone only when reading failed.
                    scope.spawn(move || drop(done.send(batch.run())));
                } else {
                    queue.apply(batch.run());
                }
            };
            let mut first = true;
            loop {
                let index = queue.next_index();
                let read_error = |error, name| Stop::Read { error, name };
                let name = match self.next_key(&mut first) {
                    Ok(Some(name)) => name,
                    Ok(None) => break,
                    Err(e) => return Err(read_error(e, None)),
                };
                let batch = par::BACKGROUND.then_some(index);
                let (mut tensor, batched) = match self.tensor(name, batch) {
                    Ok(t) => t,
                    Err((e, name)) => return Err(read_error(e, Some(name))),
                };
                let wait = if batched {
                    Wait::Values
                } else if tensor.data.len() < HASH_INLINE || !par::BACKGROUND {
                    tensor.actual_sha256 = Sha256::digest(&tensor.data).into();
                    Wait::Nothing
                } else {
                    let done = done.clone();
                    let data = std::mem::take(&mut tensor.data);
                    queue.in_flight += 1;
                    scope.spawn(move || {
                        let sum = Sha256::digest(&data).into();
                        let result = Ok((data, None, sum));
                        drop(done.send(vec![Done { index, result }]));
                    });
                    Wait::Hash
                };
                // A tensor not in the batch waits behind those that are:
                // the batch goes now, not once it is full, or a large
                // tensor (and all after it) would wait in memory for the
                // small arrays of later tensors to fill it.
                if !batched && !self.batch.jobs.is_empty() {
                    send(std::mem::take(&mut self.batch), &mut queue);
                }
                queue.waiting.push_back((tensor, wait));
                if self.batch.text.len() >= BATCH {
                    send(std::mem::take(&mut self.batch), &mut queue);
                }
                for r in results.try_iter() {
                    queue.in_flight -= 1;
                    queue.apply(r);
                }
                queue.hand_over(take).map_err(Stop::Hand)?;
            }
            if !self.batch.jobs.is_empty() {
                send(std::mem::take(&mut self.batch), &mut queue);
            }
            Ok(())
        });
        drop(done);
        // Every job has sent its results once the scope has ended.
        let mut results: Vec<Done> = results.try_iter().flatten().collect();
        match read {
            Ok(()) => {
                queue.apply(results);
                queue.hand_over(take)?;
                debug_assert!(queue.waiting.is_empty(), "every job sent its results");
                Ok(())
            }
            Err(Stop::Hand(e)) => Err(e),
            Err(Stop::Read { error, name, .. }) => {
                // A bad value before the reader's error in the file comes
                // first: in an earlier tensor, or earlier in this one (its
                // values were batched before a later key failed).
                results.extend(std::mem::take(&mut self.batch).run());
                let next = queue.next_index();
                let (this, earlier): (Vec<_>, Vec<_>) =
                    results.into_iter().partition(|d| d.index >= next);
                queue.apply(earlier);
                if let Some(e) = queue.first_failure() {
                    return Err(e);
                }
                Err(match this.into_iter().find_map(|d| d.result.err()) {
                    Some(e) => match name {
                        Some(name) => in_tensor(e, &name),
                        None => e,
                    },
                    None => error,
                })
            }
        }
    }

    /// When the `data` array that starts here (after whitespace) is small,
    /// ends in the window and holds only numbers and literals: its text is
    /// added to the batch as tensor `index`'s values (and consumed), and
    /// the answer is true. Otherwise nothing is consumed.
    pub(super) fn batch_data(
        &mut self,
        index: usize,
        dtype: Dtype,
        limit: Option<usize>,
    ) -> Result<bool> {
        if matches!(
            dtype,
            Dtype::C64 | Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2
        ) || self.peek()? != Some(b'[')
        {
            return Ok(false);
        }
        let window = &self.buf[self.pos + 1..self.end];
        let window = &window[..window.len().min(BATCH_ARRAY)];
        let first = skip_ws(window, 0);
        let Some(close) = memchr(b']', window) else {
            return Ok(false);
        };
        // An empty array, or one with strings or nested values (whose
        // first `]` need not be the array's end), is read in the window.
        if first == close || memchr3(b'"', b'[', b'{', &window[..close]).is_some() {
            return Ok(false);
        }
        let start = self.pos + 1 + first;
        let end = self.pos + 1 + close + 1;
        let at = self.base + start as u64;
        self.batch.text.extend_from_slice(&self.buf[start..end]);
        self.batch.jobs.push(Job {
            index,
            dtype,
            limit,
            end: self.batch.text.len(),
            at,
        });
        self.pos = end;
        Ok(true)
    }
}

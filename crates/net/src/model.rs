//! The network a model file stores: its architecture, or its `nn.Sequential`-style names.

use std::borrow::Cow;
use std::collections::HashMap;

use modeltool_loader::Model;

use crate::sequential::{count_linear_layers, sequential_architecture};
use crate::{Activation, Architecture, NetError, Network};

impl<'m> Network<'m> {
    /// The network `model` stores, its tensors borrowed from the model where they can be.
    ///
    /// A model that stores an architecture runs that architecture (`activation` must then be
    /// `None`). Otherwise its tensors must be a PyTorch `nn.Sequential` of linear layers
    /// (`0.weight`, `0.bias`, `2.weight`, ...), run in numeric order with `activation` between
    /// them (needed when there are several layers). A model that is neither is
    /// [`NetError::NotRunnable`], before anything else is said about it.
    ///
    /// Every tensor is read through [`Model::bytes_checked`]: one whose bytes no longer match
    /// its stored checksum is refused ([`NetError::load_error`] gives the loader's error).
    /// F32 tensors whose bytes are aligned are borrowed, not copied; F16, BF16 and F64 are
    /// converted. Errors other than the loader's start with the model's path.
    ///
    /// ```
    /// use modeltool_loader::{Model, OpenOptions};
    /// use modeltool_net::Network;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("line.json");
    /// std::fs::write(&path, r#"{"format": "modeltool.json/1",
    ///   "architecture": {"layers": [{"type": "linear", "weight": "0.weight", "bias": "0.bias"}]},
    ///   "tensors": {
    ///     "0.weight": {"dtype": "F32", "shape": [1, 1], "data": [2.0]},
    ///     "0.bias": {"dtype": "F32", "shape": [1], "data": [1.0]}}}"#)?;
    /// let model = Model::open(&path, OpenOptions::default())?;
    /// let net = Network::from_model(&model, None)?;
    /// assert_eq!(net.forward(&[3.0, -1.0], 2)?, [7.0, -1.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_model(
        model: &'m Model,
        activation: Option<Activation>,
    ) -> Result<Network<'m>, NetError> {
        build_from_model(model, activation).map_err(|e| e.in_model(model.path()))
    }
}

/// The architecture `model` stores, or the one its `nn.Sequential`-style names describe.
///
/// See [`Network::from_model`]; this reads no tensor data.
pub fn model_architecture(
    model: &Model,
    activation: Option<Activation>,
) -> Result<Architecture, NetError> {
    architecture_of(model, activation).map_err(|e| e.in_model(model.path()))
}

fn architecture_of(
    model: &Model,
    activation: Option<Activation>,
) -> Result<Architecture, NetError> {
    if let Some(value) = &model.metadata().architecture {
        if activation.is_some() {
            return Err(NetError::ActivationNotApplicable);
        }
        return Ok(Architecture::from_value(value)?);
    }
    let names: Vec<String> = model
        .entries()
        .iter()
        .map(|e| e.meta.name.clone())
        .collect();
    // First: is this a stack of linear layers at all? Said before anything about
    // activations, which only matter for one.
    let layers = count_linear_layers(&names).map_err(|e| match e {
        NetError::NotSequential { name, reason } => NetError::NotRunnable {
            example: name,
            reason,
        },
        other => other,
    })?;
    let activation = match activation {
        Some(a) => a,
        None if layers <= 1 => Activation::Identity,
        None => return Err(NetError::NeedsActivation { layers }),
    };
    sequential_architecture(&names, activation)
}

fn build_from_model(
    model: &Model,
    activation: Option<Activation>,
) -> Result<Network<'_>, NetError> {
    let arch = architecture_of(model, activation)?;
    let mut params: HashMap<String, (Vec<usize>, Cow<'_, [f32]>)> = HashMap::new();
    for name in arch.tensor_names() {
        // A missing tensor is reported by `build`, naming the layer that needs it.
        let Ok(entry) = model.entry(&name) else {
            continue;
        };
        // A damaged parameter is refused, not run.
        let bytes = model.bytes_checked(entry)?;
        let values = modeltool_loader::to_f32(bytes, entry.meta.dtype).ok_or_else(|| {
            NetError::NotFloat {
                name: name.clone(),
                dtype: entry.meta.dtype,
            }
        })?;
        params.insert(name, (entry.meta.shape.clone(), values));
    }
    Network::build(&arch, |name| params.remove(name))
}

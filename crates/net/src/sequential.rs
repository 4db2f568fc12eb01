//! The layers a PyTorch `nn.Sequential` of `nn.Linear` layers stores, read from its tensor names.

use std::collections::BTreeMap;

use crate::{Activation, Architecture, Layer, NetError};

/// Whether a tensor name is `<index>.weight` or `<index>.bias`; the index and the kind if so.
fn parse(name: &str) -> Result<(u64, bool), &'static str> {
    let (index, kind) = name
        .split_once('.')
        .ok_or("is not `<index>.weight` or `<index>.bias`")?;
    let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    let index = digits
        .then(|| index.parse::<u64>().ok())
        .flatten()
        .ok_or("is not `<index>.weight` or `<index>.bias`")?;
    match kind {
        "weight" => Ok((index, true)),
        "bias" => Ok((index, false)),
        _ => Err("is not `<index>.weight` or `<index>.bias`"),
    }
}

/// Checks that `names` are the tensors of an `nn.Sequential` of linear layers and returns how
/// many linear layers (weights) there are. The first name that does not fit is the error.
pub(crate) fn count_linear_layers(names: &[String]) -> Result<usize, NetError> {
    index_layers(names).map(|layers| layers.len())
}

/// index -> (weight, bias)
type ByIndex<'a> = BTreeMap<u64, (Option<&'a str>, Option<&'a str>)>;

fn index_layers(names: &[String]) -> Result<ByIndex<'_>, NetError> {
    let mut by_index: ByIndex<'_> = BTreeMap::new();
    for name in names {
        let not = |reason| NetError::NotSequential {
            name: name.clone(),
            reason,
        };
        let (index, is_weight) = parse(name).map_err(not)?;
        let entry = by_index.entry(index).or_default();
        let slot = if is_weight {
            &mut entry.0
        } else {
            &mut entry.1
        };
        if slot.is_some() {
            return Err(not("appears twice"));
        }
        *slot = Some(name.as_str());
    }
    if by_index.is_empty() {
        return Err(NetError::NotSequential {
            name: String::new(),
            reason: "(there are no tensors)",
        });
    }
    for (weight, bias) in by_index.values() {
        if let (None, Some(bias)) = (weight, bias) {
            return Err(NetError::NotSequential {
                name: (*bias).to_owned(),
                reason: "has no matching weight",
            });
        }
    }
    Ok(by_index)
}

/// Derives the architecture of a PyTorch `nn.Sequential` of `nn.Linear` layers from its
/// tensor names (`0.weight`, `0.bias`, `2.weight`, ...).
///
/// Linear layers are ordered by the numeric index (so `10` comes after `2`), and
/// `activation` is put between consecutive linear layers, not after the last. A bias is
/// optional per layer. Names that are not `<index>.weight` or `<index>.bias`, or a bias
/// without its weight, are [`NetError::NotSequential`].
///
/// ```
/// use modeltool_net::{Activation, Layer, sequential_architecture};
/// let names = ["2.weight", "0.weight", "0.bias"].map(String::from);
/// let arch = sequential_architecture(&names, Activation::Relu)?;
/// assert_eq!(arch.layers[1], Layer::Relu);
/// assert_eq!(arch.tensor_names(), ["0.weight", "0.bias", "2.weight"]);
/// # Ok::<(), modeltool_net::NetError>(())
/// ```
pub fn sequential_architecture(
    names: &[String],
    activation: Activation,
) -> Result<Architecture, NetError> {
    let by_index = index_layers(names)?;
    let count = by_index.len();
    let mut layers = Vec::with_capacity(2 * count);
    for (position, (weight, bias)) in by_index.into_values().enumerate() {
        layers.push(Layer::Linear {
            weight: weight
                .expect("index_layers refuses a bias alone")
                .to_owned(),
            bias: bias.map(str::to_owned),
        });
        if position + 1 < count {
            layers.push(activation.layer());
        }
    }
    Ok(Architecture { layers })
}

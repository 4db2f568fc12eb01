//! Tensors found anywhere in a checkpoint's object, named by their path.

use std::collections::BTreeMap;
use std::ops::Range;

use super::error::PytorchError;
use super::value::{RawTensor, Value};
use crate::Dtype;

/// The safetensors dtype of a torch dtype name (`float16`, `float8_e4m3fn`);
/// `None` for the ones safetensors lacks (complex, quantized) or unknown names.
pub fn dtype_from_torch(name: &str) -> Option<Dtype> {
    Some(match name {
        "float64" | "double" => Dtype::F64,
        "float32" | "float" => Dtype::F32,
        "float16" | "half" => Dtype::F16,
        "bfloat16" => Dtype::BF16,
        "int64" | "long" => Dtype::I64,
        "int32" | "int" => Dtype::I32,
        "int16" | "short" => Dtype::I16,
        "int8" => Dtype::I8,
        "uint8" => Dtype::U8,
        "uint16" => Dtype::U16,
        "uint32" => Dtype::U32,
        "uint64" => Dtype::U64,
        "bool" => Dtype::BOOL,
        "float8_e4m3fn" => Dtype::F8_E4M3,
        "float8_e5m2" => Dtype::F8_E5M2,
        "float8_e4m3fnuz" => Dtype::F8_E4M3FNUZ,
        "float8_e5m2fnuz" => Dtype::F8_E5M2FNUZ,
        "float8_e8m0fnu" => Dtype::F8_E8M0,
        _ => return None,
    })
}

/// The dtype of a typed storage class (`FloatStorage`), `Ok(None)` for
/// `UntypedStorage`, `Err(torch name)` for a class safetensors has no dtype for.
fn storage_dtype(class: &str) -> Result<Option<Dtype>, &str> {
    Ok(Some(match class {
        "UntypedStorage" => return Ok(None),
        "DoubleStorage" => Dtype::F64,
        "FloatStorage" => Dtype::F32,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" => Dtype::U8,
        "BoolStorage" => Dtype::BOOL,
        other => return Err(other),
    }))
}

/// One storage: a run of bytes that one or more tensors view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageInfo {
    /// Its key (`data/KEY` in a zip).
    pub key: String,
    /// Its size in bytes, as the pickle declares it.
    pub nbytes: u64,
    /// Bytes per element of the storage's class (1 for `UntypedStorage`):
    /// the legacy stream counts a storage's size in these.
    pub element_size: u64,
    /// Where it lived when saved (`cpu`, `cuda:0`).
    pub location: String,
}

/// A tensor of the checkpoint: a strided view into a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchTensor {
    /// Its path in the object: dict keys, attribute names and list indices
    /// joined by `.` (`model.encoder.0.weight`). Exact: escape it to print it.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements stepped over per index of each dimension.
    pub strides: Vec<usize>,
    /// First element's index in the storage.
    pub storage_offset: usize,
    /// The storage's key.
    pub storage: String,
    /// Whether it was saved as an `nn.Parameter`.
    pub parameter: bool,
}

impl TorchTensor {
    /// Number of elements. Checked when the checkpoint was read; for a
    /// tensor made by hand, saturating at `usize::MAX`.
    pub fn element_count(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |a, &n| a.checked_mul(n))
            .unwrap_or(usize::MAX)
    }

    /// Bytes of the contiguous copy (saturating, as [`TorchTensor::element_count`]).
    pub fn byte_len(&self) -> usize {
        self.element_count().saturating_mul(self.dtype.bits() / 8)
    }

    /// Whether the view is already row-major contiguous: its bytes are one
    /// run of the storage, usable without a copy.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return self.element_count() == 0;
            }
            expected *= size;
        }
        true
    }

    /// The bytes of its storage the view touches, `start..end` in storage
    /// byte coordinates: all a reader needs to fetch. `0..0` for an empty tensor.
    pub fn storage_range(&self) -> Range<u64> {
        // Checked when the checkpoint was read; saturating for a tensor
        // made by hand (whose copy then fails for want of bytes).
        let es = (self.dtype.bits() / 8) as u64;
        if self.element_count() == 0 {
            // Touches nothing, whatever its offset.
            return 0..0;
        }
        let first = (self.storage_offset as u64).saturating_mul(es);
        let span = self
            .shape
            .iter()
            .zip(&self.strides)
            .fold(0u64, |acc, (&n, &s)| {
                acc.saturating_add((n as u64 - 1).saturating_mul(s as u64))
            });
        first
            ..span
                .saturating_add(1)
                .saturating_mul(es)
                .saturating_add(first)
    }
}

/// What a checkpoint holds: its tensors, the storages they view, and every
/// other value by path.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Tensors in the order the pickle holds them.
    pub tensors: Vec<TorchTensor>,
    /// Storages by key.
    pub storages: BTreeMap<String, StorageInfo>,
    /// Non-tensor values by path (`epoch`, `optimizer.param_groups.0.lr`),
    /// exact as stored: escape and bound them to print them.
    pub metadata: Vec<(String, Value)>,
}

impl Checkpoint {
    /// Collects the tensors of a pickled object (a state dict, a dict around
    /// one, nested containers, TorchScript module objects), checking every
    /// view against its storage's declared size.
    ///
    /// ```
    /// use modeltool_format::pytorch::{Checkpoint, Value};
    /// let value = Value::Dict(vec![(Value::Str("epoch".into()), Value::Int(3))]);
    /// let c = Checkpoint::from_value(&value)?;
    /// assert!(c.tensors.is_empty());
    /// assert_eq!(c.metadata, vec![("epoch".to_owned(), Value::Int(3))]);
    /// # Ok::<(), modeltool_format::pytorch::PytorchError>(())
    /// ```
    pub fn from_value(value: &Value) -> Result<Checkpoint, PytorchError> {
        let mut c = Checkpoint {
            tensors: Vec::new(),
            storages: BTreeMap::new(),
            metadata: Vec::new(),
        };
        let mut raw = Vec::new();
        walk(value, String::new(), &mut raw, &mut c.metadata);
        let mut names = std::collections::HashSet::new();
        for (name, t) in raw {
            if !names.insert(name.clone()) {
                return Err(PytorchError::DuplicateName { name });
            }
            let tensor = c.add(name, t)?;
            c.tensors.push(tensor);
        }
        Ok(c)
    }

    fn add(&mut self, name: String, t: &RawTensor) -> Result<TorchTensor, PytorchError> {
        let unsupported = |dtype: &str| PytorchError::UnsupportedDtype {
            tensor: name.clone(),
            dtype: dtype.to_owned(),
        };
        let typed = storage_dtype(&t.storage.class).map_err(unsupported)?;
        let dtype = match (&t.dtype, typed) {
            (Some(d), _) => dtype_from_torch(d).ok_or_else(|| unsupported(d))?,
            (None, Some(d)) => d,
            (None, None) => return Err(unsupported("untyped storage without a dtype")),
        };
        let storage_es = typed.map_or(1, |d| d.bits() / 8) as u64;
        let overflow = || PytorchError::ShapeOverflow {
            tensor: name.clone(),
            shape: t.shape.clone(),
        };
        let mut storage_offset = t.storage_offset;
        // A view of a storage bounds the tensor too (torch's `set_` checks
        // the tensor against the view, not the root): its end in elements.
        let mut view_end = None;
        let (key, nbytes) = match t.storage.view {
            // A legacy storage view: elements `off..off+len` of the root storage.
            Some((off, len)) => {
                let es = storage_es;
                if off.checked_add(len).is_none_or(|end| end > t.storage.numel) {
                    return Err(PytorchError::ViewOutOfStorage {
                        tensor: name.clone(),
                        offset: off,
                        shape: vec![len],
                        strides: vec![1],
                        last: off.saturating_add(len),
                        numel: t.storage.numel,
                    });
                }
                // The tensor's offset is in its own dtype's elements.
                let es_t = (dtype.bits() / 8) as u64;
                let off_bytes = off.checked_mul(es).ok_or_else(overflow)?;
                let shift = off_bytes
                    .checked_div(es_t)
                    .filter(|_| off_bytes % es_t == 0)
                    .ok_or_else(overflow)?;
                storage_offset = storage_offset.checked_add(shift).ok_or_else(overflow)?;
                view_end = Some(shift.saturating_add(len.saturating_mul(es) / es_t));
                let nbytes = t.storage.numel.checked_mul(es).ok_or_else(overflow)?;
                (t.storage.key.clone(), nbytes)
            }
            None => (
                t.storage.key.clone(),
                t.storage
                    .numel
                    .checked_mul(storage_es)
                    .ok_or_else(overflow)?,
            ),
        };
        match self.storages.get(&key) {
            Some(s) if s.nbytes != nbytes => {
                return Err(PytorchError::StorageConflict {
                    key,
                    first: s.nbytes,
                    second: nbytes,
                });
            }
            Some(_) => {}
            None => {
                self.storages.insert(
                    key.clone(),
                    StorageInfo {
                        key: key.clone(),
                        nbytes,
                        element_size: storage_es,
                        location: t.storage.location.clone(),
                    },
                );
            }
        }
        // The view must lie inside the storage.
        let es = (dtype.bits() / 8) as u64;
        let numel = nbytes / es;
        let mut count: u64 = 1;
        let mut span: u64 = 0;
        for (&n, &s) in t.shape.iter().zip(&t.strides) {
            count = count.checked_mul(n).ok_or_else(overflow)?;
            if n > 0 {
                span = (n - 1)
                    .checked_mul(s)
                    .and_then(|x| x.checked_add(span))
                    .ok_or_else(overflow)?;
            }
        }
        count.checked_mul(es).ok_or_else(overflow)?;
        if count > 0 {
            let last = storage_offset.checked_add(span);
            let end = view_end.map_or(numel, |e| e.min(numel));
            if last.is_none_or(|l| l >= end) {
                return Err(PytorchError::ViewOutOfStorage {
                    tensor: name,
                    offset: storage_offset,
                    shape: t.shape.clone(),
                    strides: t.strides.clone(),
                    last: last.unwrap_or(u64::MAX),
                    numel: end,
                });
            }
        }
        let usize_of = |v: u64| usize::try_from(v).map_err(|_| overflow());
        Ok(TorchTensor {
            dtype,
            shape: t
                .shape
                .iter()
                .map(|&v| usize_of(v))
                .collect::<Result<_, _>>()?,
            strides: t
                .strides
                .iter()
                .map(|&v| usize_of(v))
                .collect::<Result<_, _>>()?,
            storage_offset: usize_of(storage_offset)?,
            storage: key,
            parameter: t.parameter,
            name,
        })
    }

    /// Storages viewed by more than one tensor (tied weights, LSTM gates
    /// packed in one buffer): storage key and the tensors' names.
    pub fn shared_storages(&self) -> Vec<(String, Vec<String>)> {
        let mut by_key: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for t in &self.tensors {
            by_key.entry(&t.storage).or_default().push(t.name.clone());
        }
        by_key
            .into_iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(k, names)| (k.to_owned(), names))
            .collect()
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TorchTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

fn join(prefix: &str, part: &str) -> String {
    if prefix.is_empty() {
        part.to_owned()
    } else {
        format!("{prefix}.{part}")
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

fn walk<'v>(
    v: &'v Value,
    path: String,
    tensors: &mut Vec<(String, &'v RawTensor)>,
    meta: &mut Vec<(String, Value)>,
) {
    match v {
        Value::Tensor(t) => tensors.push((path, t)),
        Value::Dict(items) if !items.is_empty() => {
            for (k, v) in items {
                walk(v, join(&path, &key_text(k)), tensors, meta);
            }
        }
        Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                walk(v, join(&path, &i.to_string()), tensors, meta);
            }
        }
        Value::Object(o) if holds_tensor(v) => {
            // A module object (TorchScript) or an allowed class: its
            // attributes are named as dict keys would be.
            for (i, a) in o.args.iter().enumerate() {
                walk(a, join(&path, &i.to_string()), tensors, meta);
            }
            if let Some(state) = &o.state {
                walk(state, path, tensors, meta);
            }
        }
        other => meta.push((path, other.clone())),
    }
}

fn holds_tensor(v: &Value) -> bool {
    match v {
        Value::Tensor(_) => true,
        Value::Dict(items) => items.iter().any(|(_, v)| holds_tensor(v)),
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            items.iter().any(holds_tensor)
        }
        Value::Object(o) => {
            o.args.iter().any(holds_tensor) || o.state.as_ref().is_some_and(holds_tensor)
        }
        _ => false,
    }
}

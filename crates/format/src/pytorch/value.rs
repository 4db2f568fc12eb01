//! The plain data a pickle becomes: no Python object is ever made.

use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};

/// A module-level name a pickle refers to (`torch.float16`,
/// `collections.OrderedDict`): only its spelling, never imported.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Global {
    /// The module, e.g. `torch._utils`.
    pub module: String,
    /// The name inside the module, e.g. `_rebuild_tensor_v2`.
    pub name: String,
}

impl Global {
    /// A global from its two parts.
    pub fn new(module: &str, name: &str) -> Global {
        Global {
            module: module.to_owned(),
            name: name.to_owned(),
        }
    }

    /// `MODULE.NAME`, the spelling allow-lists use.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// An instance of a class the caller allowed (or a TorchScript module, or
/// `torch.device`): its class's name, the arguments it would have been made
/// from and the state it would have been given. Nothing was called.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The class.
    pub class: Global,
    /// The arguments of the call that would have made it.
    pub args: Vec<Value>,
    /// The state `BUILD` would have set, if any.
    pub state: Option<Value>,
}

/// A storage as a checkpoint's persistent id names it:
/// `("storage", torch.FloatStorage, "0", "cpu", 6)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The key: the record `data/KEY` in a zip checkpoint, the key in the
    /// legacy stream's storage list.
    pub key: String,
    /// The storage class's name in module `torch` (`FloatStorage`,
    /// `UntypedStorage`).
    pub class: String,
    /// Where the storage lived when saved (`cpu`, `cuda:0`).
    pub location: String,
    /// The declared size: elements of the class's dtype (bytes for
    /// `UntypedStorage`).
    pub numel: u64,
    /// Legacy files only: this storage is the elements
    /// `offset..offset + len` of the storage `key`.
    pub view: Option<(u64, u64)>,
}

/// What `torch._utils._rebuild_tensor_v2` / `_v3` (or `_rebuild_parameter`
/// around them) would have been called with: a view into a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTensor {
    /// The storage the elements are in.
    pub storage: StorageRef,
    /// The first element's index in the storage, in elements.
    pub storage_offset: u64,
    /// The dimensions.
    pub shape: Vec<u64>,
    /// Elements to step over per index of each dimension.
    pub strides: Vec<u64>,
    /// The dtype `_rebuild_tensor_v3` names (`float8_e4m3fn`), if it was used.
    pub dtype: Option<String>,
    /// Whether it was wrapped as an `nn.Parameter`.
    pub parameter: bool,
    /// The `requires_grad` flag stored with it.
    pub requires_grad: bool,
}

/// A pickled value, as data.
///
/// Serialises to JSON: `None` as `null`, tuples, lists and sets as arrays,
/// a dict whose keys are all strings as an object (others as an array of
/// `[key, value]` pairs), bytes as `{"$bytes": "hex"}`, big integers as
/// `{"$int": "decimal"}`, globals as `{"$global": "module.name"}`, objects as
/// `{"$object": "module.name", "args": [..], "state": ..}`, storages as
/// `{"$storage": "key"}`, tensors as `{"$tensor": {..}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer: little-endian two's complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A byte string (or a Python 2 string that is not UTF-8).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple (also `torch.Size`).
    Tuple(Vec<Value>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A reference to a recognised global, as data (`torch.float16`).
    Global(Box<Global>),
    /// An instance of an allowed class, never made.
    Object(Box<Object>),
    /// A storage reference.
    Storage(Box<StorageRef>),
    /// A tensor.
    Tensor(Box<RawTensor>),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one that fits in 64 bits.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value of `key` if this is a dict with a string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python's type name for the value (`dict`, `int`, `Tensor`), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global(_) => "global",
            Value::Object(_) => "object",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "Tensor",
        }
    }
}

/// A big integer's decimal digits from little-endian two's complement bytes.
pub(crate) fn big_decimal(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    // Magnitude as little-endian bytes.
    let mut mag: Vec<u8> = if negative {
        let mut carry = 1u16;
        bytes
            .iter()
            .map(|&b| {
                let v = u16::from(!b) + carry;
                carry = v >> 8;
                v as u8
            })
            .collect()
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut().rev() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII digits")
}

impl fmt::Display for Value {
    /// A Python-like rendering (`{'epoch': 3, 'lr': 0.1}`), unbounded and
    /// unescaped: the caller escapes and cuts it for a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(
            f: &mut fmt::Formatter<'_>,
            open: &str,
            items: &[Value],
            close: &str,
        ) -> fmt::Result {
            f.write_str(open)?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            f.write_str(close)
        }
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => f.write_str(&big_decimal(b)),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::List(items) => seq(f, "[", items, "]"),
            Value::Tuple(items) if items.len() == 1 => seq(f, "(", items, ",)"),
            Value::Tuple(items) => seq(f, "(", items, ")"),
            Value::Set(items) => seq(f, "{", items, "}"),
            Value::Dict(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Global(g) => write!(f, "{g}"),
            Value::Object(o) => {
                seq(f, &format!("{}(", o.class), &o.args, ")")?;
                if let Some(state) = &o.state {
                    write!(f, " with state {state}")?;
                }
                Ok(())
            }
            Value::Storage(s) => write!(f, "<storage {} {} x{}>", s.key, s.class, s.numel),
            Value::Tensor(t) => write!(f, "<tensor {:?} in storage {}>", t.shape, t.storage.key),
        }
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn one<S: serde::Serializer, V: serde::Serialize + ?Sized>(
            s: S,
            key: &str,
            value: &V,
        ) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(key, value)?;
            m.end()
        }
        match self {
            Value::None => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::BigInt(b) => one(s, "$int", &big_decimal(b)),
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => one(s, "$bytes", &hex::encode(b)),
            Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    q.serialize_element(v)?;
                }
                q.end()
            }
            Value::Dict(items) => {
                if items.iter().all(|(k, _)| matches!(k, Value::Str(_))) {
                    let mut m = s.serialize_map(Some(items.len()))?;
                    for (k, v) in items {
                        m.serialize_entry(k, v)?;
                    }
                    m.end()
                } else {
                    let mut q = s.serialize_seq(Some(items.len()))?;
                    for (k, v) in items {
                        q.serialize_element(&(k, v))?;
                    }
                    q.end()
                }
            }
            Value::Global(g) => one(s, "$global", &g.dotted()),
            Value::Object(o) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("$object", &o.class.dotted())?;
                m.serialize_entry("args", &o.args)?;
                m.serialize_entry("state", &o.state)?;
                m.end()
            }
            Value::Storage(st) => one(s, "$storage", &st.key),
            Value::Tensor(t) => {
                let mut m = s.serialize_map(Some(4))?;
                m.serialize_entry("$tensor", &t.storage.key)?;
                m.serialize_entry("shape", &t.shape)?;
                m.serialize_entry("strides", &t.strides)?;
                m.serialize_entry("storage_offset", &t.storage_offset)?;
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_small() {
        // A pickle may expand to MAX_VALUES of them.
        assert!(std::mem::size_of::<Value>() <= 32);
    }

    #[test]
    fn big_integers_in_decimal() {
        // The legacy magic number, as LONG1 writes it.
        let magic = 0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10].to_vec();
        assert_eq!(big_decimal(&magic), 0x1950a86a20f9469cfc6cu128.to_string());
        assert_eq!(big_decimal(&[0xff]), "-1");
        assert_eq!(big_decimal(&[0x00, 0x80]), "-32768");
        assert_eq!(big_decimal(&[]), "0");
    }
}

//! A pickle interpreter that builds data and never calls anything.
//!
//! It runs the opcodes of protocols 0-5 that hold data (what torch and
//! Python 2's protocol 2 emit) over an arena of nodes, so that memo
//! references share one node exactly as Python's objects do (a dict stored
//! in the memo and filled afterwards is seen filled). Globals are looked up
//! by name in a fixed table of what checkpoints use ([`Known`]); a call
//! (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`) of a recognised global builds the
//! data it stands for (a tensor view, an `OrderedDict`, a tuple for
//! `torch.Size`), an allowed class becomes an [`Object`], and any other name
//! is refused when the pickle names it, before anything could use it.

use std::collections::{BTreeMap, HashMap};

use super::error::PickleError;
use super::value::{Global, Object, RawTensor, StorageRef, Value};

/// Deepest nesting of containers a pickle may build. Checkpoints nest a few
/// levels (a TorchScript module two per submodule); the bound keeps every
/// recursive walk of a [`Value`] (expanding, naming tensors, printing,
/// dropping) far from the end of a thread's stack.
pub const MAX_DEPTH: usize = 100;

/// Most values the result may hold once shared references are expanded
/// (a pickle can refer to one list many times; each becomes a copy).
pub const MAX_VALUES: usize = 4_000_000;

/// How a pickle is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickleOptions<'a> {
    /// Classes (`"MODULE.NAME"`) accepted as opaque data: an instance is kept
    /// as its class's name, its arguments and its state; nothing is called.
    /// The code-execution entry points ([`never_allowed`]) are refused even here.
    pub allow_globals: &'a [String],
    /// Accept the `__torch__.*` classes of a TorchScript archive as objects.
    pub torchscript: bool,
    /// The tar format ([`super::TarFile`]): persistent ids are keys
    /// (`str(int)`) naming these tensors and storages, read beforehand
    /// from the archive's other entries.
    pub tar_objects: Option<&'a BTreeMap<String, Value>>,
}

/// A parsed pickle and where it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Pickle {
    /// The value `STOP` returned.
    pub value: Value,
    /// Bytes consumed, `STOP` included: the next pickle of a stream starts here.
    pub len: usize,
}

/// Whether `module.name` is a code-execution entry point that no
/// allow-list can admit (`os.system`, `builtins.eval`, `subprocess.Popen`...).
pub fn never_allowed(module: &str, name: &str) -> bool {
    const MODULES: &[&str] = &[
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "importlib",
        "runpy",
        "pickle",
        "_pickle",
        "marshal",
        "ctypes",
        "shutil",
        "socket",
        "pty",
        "code",
        "codeop",
        "commands",
        "webbrowser",
        "multiprocessing",
        "threading",
        "signal",
        "platform",
        "pdb",
        "timeit",
        "types",
        "inspect",
    ];
    const BUILTINS: &[&str] = &[
        "eval",
        "exec",
        "execfile",
        "compile",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "open",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "apply",
        "help",
        "memoryview",
    ];
    let root = module.split('.').next().unwrap_or(module);
    MODULES.contains(&root)
        || (matches!(module, "builtins" | "__builtin__") && BUILTINS.contains(&name))
        || (module == "operator" && matches!(name, "attrgetter" | "methodcaller" | "itemgetter"))
        || (module == "functools" && name == "partial")
        || name.starts_with("__")
}

/// The globals of PyTorch checkpoints, recognised by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// `torch._utils._rebuild_tensor` (old), `_rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3` (dtype given apart from the storage).
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter` and `_rebuild_parameter_with_state`.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`.
    RebuildFromType,
    /// A tensor rebuilder for a kind we do not read (quantized, sparse, meta...).
    UnsupportedTensor,
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch.Size`.
    Size,
    /// Data-only constructors kept as objects: `torch.device`,
    /// `torch.serialization._get_layout`, `torch.memory_format`.
    DataObject,
    /// A storage class (`torch.FloatStorage`, `torch.storage.UntypedStorage`).
    Storage(String),
    /// A dtype (`torch.float16`).
    Dtype,
    /// `torch.Tensor`, `torch.nn.parameter.Parameter`: the type argument of
    /// `_rebuild_from_type_v2`.
    TensorType,
    /// TorchScript's list helpers (`torch.jit._pickle.build_intlist`...),
    /// which return their argument.
    Identity,
    /// `_codecs.encode(text, "latin1")`: how protocol 2 writes bytes.
    CodecsEncode,
    /// `builtins.set`, `frozenset`.
    Set,
    /// `builtins.bytearray`, `bytes`.
    Bytes,
    /// `builtins.slice`, `complex`, `range`: data kept as objects.
    Builtin,
    /// `copyreg._reconstructor(cls, base, state)`.
    Reconstructor,
    /// `numpy.dtype` (kept as an object) and numpy's `scalar(dtype, bytes)`
    /// (read as the number when the dtype is a plain one, as in `best_acc`).
    NumpyDtype,
    /// See [`Known::NumpyDtype`].
    NumpyScalar,
    /// A class on the caller's allow-list, or a TorchScript `__torch__` class.
    Allowed,
}

const DTYPES: &[&str] = &[
    "float64",
    "double",
    "float32",
    "float",
    "float16",
    "half",
    "bfloat16",
    "int64",
    "long",
    "int32",
    "int",
    "int16",
    "short",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "chalf",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float4_e2m1fn_x2",
    "bits8",
    "bits16",
];

const STORAGES: &[&str] = &[
    "DoubleStorage",
    "FloatStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "UntypedStorage",
];

const LEGACY_TENSOR_TYPES: &[&str] = &[
    "DoubleTensor",
    "FloatTensor",
    "HalfTensor",
    "BFloat16Tensor",
    "LongTensor",
    "IntTensor",
    "ShortTensor",
    "CharTensor",
    "ByteTensor",
    "BoolTensor",
];

/// Looks a global up in the checkpoint table; `None` when it is not one.
pub fn known(module: &str, name: &str) -> Option<Known> {
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => Known::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Known::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Known::RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Known::RebuildFromType,
        (
            "torch._utils",
            "_rebuild_qtensor"
            | "_rebuild_sparse_tensor"
            | "_rebuild_sparse_csr_tensor"
            | "_rebuild_meta_tensor_no_storage"
            | "_rebuild_wrapper_subclass"
            | "_rebuild_device_tensor_from_numpy"
            | "_rebuild_device_tensor_from_cpu_tensor"
            | "_rebuild_nested_tensor"
            | "_rebuild_xla_tensor"
            | "_rebuild_mkldnn_tensor"
            | "_rebuild_mtia_tensor",
        ) => Known::UnsupportedTensor,
        ("collections", "OrderedDict") => Known::OrderedDict,
        ("torch", "Size") => Known::Size,
        ("torch", "device") | ("torch.serialization", "_get_layout") => Known::DataObject,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Known::TensorType,
        // The tensor types the tar format's `tensors` entry names.
        ("torch" | "torch.cuda", n) if LEGACY_TENSOR_TYPES.contains(&n) => Known::TensorType,
        ("torch", n) | ("torch.storage", n) if STORAGES.contains(&n) => {
            Known::Storage(n.to_owned())
        }
        ("torch", n) if DTYPES.contains(&n) => Known::Dtype,
        (
            "torch.jit._pickle",
            "build_intlist" | "build_tensorlist" | "build_doublelist" | "build_boollist"
            | "build_genericlist" | "restore_type_tag",
        ) => Known::Identity,
        ("_codecs", "encode") => Known::CodecsEncode,
        ("builtins", "set" | "frozenset") => Known::Set,
        ("builtins", "bytearray" | "bytes") => Known::Bytes,
        ("builtins", "slice" | "complex" | "range") => Known::Builtin,
        ("copyreg", "_reconstructor") => Known::Reconstructor,
        ("numpy", "dtype") => Known::NumpyDtype,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Known::NumpyScalar,
        _ => return None,
    })
}

type Id = usize;

#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Class(Global, Known),
    Object {
        class: Global,
        args: Vec<Id>,
        state: Option<Id>,
    },
    Storage(StorageRef),
    Tensor(Box<RawTensor>),
}

struct Machine<'a, 'o> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for messages.
    at: usize,
    op: &'static str,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    opts: &'o PickleOptions<'o>,
}

/// Parses one pickle from the start of `data`.
///
/// ```
/// use modeltool_format::pytorch::{PickleOptions, Value, parse_pickle};
///
/// // pickle.dumps({"epoch": 3}, protocol=2)
/// let bytes = b"\x80\x02}q\x00X\x05\x00\x00\x00epochq\x01K\x03s.";
/// let pickle = parse_pickle(bytes, &PickleOptions::default())?;
/// assert_eq!(pickle.value.get("epoch"), Some(&Value::Int(3)));
/// assert_eq!(pickle.len, bytes.len());
///
/// // pickle.dumps(os.system) is refused, naming what it would have called.
/// let evil = b"\x80\x02cposix\nsystem\nq\x00.";
/// let err = parse_pickle(evil, &PickleOptions::default()).unwrap_err();
/// assert!(err.to_string().contains("posix.system"), "{err}");
/// # Ok::<(), modeltool_format::pytorch::PickleError>(())
/// ```
pub fn parse_pickle(data: &[u8], opts: &PickleOptions<'_>) -> Result<Pickle, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        at: 0,
        op: "",
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        opts,
    };
    let root = m.run()?;
    // Measure first (cheap, no allocation per value): a few bytes that
    // share one list a billion times fail here, before anything is copied.
    let mut on_path = vec![false; m.nodes.len()];
    let mut measured = vec![None; m.nodes.len()];
    m.measure(root, 0, &mut on_path, &mut measured)?;
    let mut budget = MAX_VALUES;
    let value = m.expand(root, 0, &mut budget, &mut on_path)?;
    Ok(Pickle { value, len: m.pos })
}

impl Machine<'_, '_> {
    fn err_trunc(&self, need: u64) -> PickleError {
        PickleError::Truncated {
            offset: self.at as u64,
            opcode: self.op,
            need,
            available: (self.data.len() - self.pos) as u64,
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        if self.data.len() - self.pos < n {
            return Err(self.err_trunc(n as u64));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes a length-prefixed body, checking the declared length against
    /// the bytes left before anything is allocated.
    fn take_declared(&mut self, declared: u64) -> Result<&[u8], PickleError> {
        let available = (self.data.len() - self.pos) as u64;
        if declared > available {
            return Err(PickleError::DeclaredPastEnd {
                offset: self.at as u64,
                opcode: self.op,
                declared,
                available,
            });
        }
        self.take(declared as usize)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn line(&mut self) -> Result<&[u8], PickleError> {
        let rest = &self.data[self.pos..];
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(self.err_trunc(rest.len() as u64 + 1)),
        }
    }

    fn line_str(&mut self) -> Result<String, PickleError> {
        let at = self.at as u64;
        let l = self.line()?.to_vec();
        String::from_utf8(l).map_err(|_| PickleError::NotUtf8 { offset: at })
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PickleError::StackUnderflow {
                offset: self.at as u64,
                opcode: self.op,
            });
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PickleError::StackUnderflow {
                offset: self.at as u64,
                opcode: self.op,
            });
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return Err(PickleError::NoMark {
                offset: self.at as u64,
                opcode: self.op,
            });
        };
        Ok(self.stack.split_off(mark))
    }

    fn wrong(&self, expected: &'static str, found: Id) -> PickleError {
        PickleError::WrongType {
            offset: self.at as u64,
            opcode: self.op,
            expected,
            found: self.kind(found),
        }
    }

    fn kind(&self, id: Id) -> &'static str {
        match &self.nodes[id] {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt(_) => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::Set(_) => "set",
            Node::Class(..) => "class",
            Node::Object { .. } => "object",
            Node::Storage(_) => "storage",
            Node::Tensor(_) => "Tensor",
        }
    }

    fn memo_get(&self, key: u64) -> Result<Id, PickleError> {
        self.memo
            .get(&key)
            .copied()
            .ok_or(PickleError::MemoMissing {
                offset: self.at as u64,
                index: key,
            })
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    /// `find_class`: the only place a name becomes something the stack holds.
    fn global(&mut self, module: &str, name: &str) -> Result<Node, PickleError> {
        // Python 3 reads Python 2 pickles with these names mapped.
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            m => m,
        };
        let g = Global::new(module, name);
        if never_allowed(module, name) {
            return Err(PickleError::Forbidden {
                offset: self.at as u64,
                opcode: self.op,
                global: g.dotted(),
                allowable: false,
            });
        }
        if let Some(k) = known(module, name) {
            return Ok(Node::Class(g, k));
        }
        let dotted = g.dotted();
        if self.opts.allow_globals.contains(&dotted)
            || (self.opts.torchscript
                && (module == "__torch__" || module.starts_with("__torch__.")))
        {
            return Ok(Node::Class(g, Known::Allowed));
        }
        Err(PickleError::Forbidden {
            offset: self.at as u64,
            opcode: self.op,
            global: dotted,
            allowable: true,
        })
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            self.at = self.pos;
            let code = self.u8().map_err(|_| PickleError::NoStop {
                len: self.data.len() as u64,
            })?;
            self.op = opcode_name(code);
            match code {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(PickleError::Protocol {
                            offset: self.at as u64,
                            version: v,
                        });
                    }
                }
                0x95 => {
                    // FRAME: a hint of how many bytes follow; checked, then ignored.
                    let n = u64::from_le_bytes(self.arr()?);
                    let available = (self.data.len() - self.pos) as u64;
                    if n > available {
                        return Err(PickleError::DeclaredPastEnd {
                            offset: self.at as u64,
                            opcode: self.op,
                            declared: n,
                            available,
                        });
                    }
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                b'N' => self.push(Node::None),
                0x88 => self.push(Node::Bool(true)),
                0x89 => self.push(Node::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Node::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Node::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Node::Int(v.into()));
                }
                0x8a => {
                    let n = self.u8()?;
                    let bytes = self.take_declared(n.into())?.to_vec();
                    self.push(long_node(bytes));
                }
                0x8b => {
                    let n = u32::from_le_bytes(self.arr()?);
                    let bytes = self.take_declared(n.into())?.to_vec();
                    self.push(long_node(bytes));
                }
                b'G' => {
                    // BINFLOAT is big-endian.
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Node::Float(v));
                }
                b'I' => {
                    let at = self.at as u64;
                    let line = self.line_str()?;
                    let node = match line.as_str() {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        s => Node::Int(s.parse().map_err(|_| PickleError::BadText {
                            offset: at,
                            opcode: "INT",
                        })?),
                    };
                    self.push(node);
                }
                b'L' => {
                    let at = self.at as u64;
                    let line = self.line_str()?;
                    let v: i64 =
                        line.trim_end_matches('L')
                            .parse()
                            .map_err(|_| PickleError::BadText {
                                offset: at,
                                opcode: "LONG",
                            })?;
                    self.push(Node::Int(v));
                }
                b'F' => {
                    let at = self.at as u64;
                    let line = self.line_str()?;
                    let v: f64 = line.parse().map_err(|_| PickleError::BadText {
                        offset: at,
                        opcode: "FLOAT",
                    })?;
                    self.push(Node::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.arr()?);
                    let s = self.utf8(n.into())?;
                    self.push(Node::Str(s));
                }
                0x8c => {
                    let n = self.u8()?;
                    let s = self.utf8(n.into())?;
                    self.push(Node::Str(s));
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.arr()?);
                    let s = self.utf8(n)?;
                    self.push(Node::Str(s));
                }
                b'V' => {
                    let at = self.at as u64;
                    let line = self.line()?.to_vec();
                    let s = raw_unicode_escape(&line).ok_or(PickleError::BadText {
                        offset: at,
                        opcode: "UNICODE",
                    })?;
                    self.push(Node::Str(s));
                }
                b'T' | b'U' => {
                    // Python 2 `str`: text when it is UTF-8, bytes otherwise.
                    let n: u64 = if code == b'T' {
                        let v = i32::from_le_bytes(self.arr()?);
                        u64::try_from(v).map_err(|_| PickleError::BadText {
                            offset: self.at as u64,
                            opcode: "BINSTRING",
                        })?
                    } else {
                        self.u8()?.into()
                    };
                    let b = self.take_declared(n)?.to_vec();
                    self.push(py2_str(b));
                }
                b'S' => {
                    let at = self.at as u64;
                    let line = self.line()?.to_vec();
                    let b = string_literal(&line).ok_or(PickleError::BadText {
                        offset: at,
                        opcode: "STRING",
                    })?;
                    self.push(py2_str(b));
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.arr()?);
                    let b = self.take_declared(n.into())?.to_vec();
                    self.push(Node::Bytes(b));
                }
                b'C' => {
                    let n = self.u8()?;
                    let b = self.take_declared(n.into())?.to_vec();
                    self.push(Node::Bytes(b));
                }
                0x8e | 0x96 => {
                    let n = u64::from_le_bytes(self.arr()?);
                    let b = self.take_declared(n)?.to_vec();
                    self.push(Node::Bytes(b));
                }
                b')' => self.push(Node::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(code - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs));
                }
                0x8f => self.push(Node::Set(Vec::new())),
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top()?;
                    self.extend_list(list, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend_list(list, items)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    match &mut self.nodes[set] {
                        Node::Set(s) => s.extend(items),
                        _ => return Err(self.wrong("set", set)),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?;
                    self.extend_dict(dict, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let dict = self.top()?;
                    self.extend_dict(dict, pairs)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.arr()?);
                    self.memo_put(k.into())?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let at = self.at as u64;
                    let k: u64 = self.line_str()?.parse().map_err(|_| PickleError::BadText {
                        offset: at,
                        opcode: "PUT",
                    })?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    let id = self.memo_get(k.into())?;
                    self.stack.push(id);
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.arr()?);
                    let id = self.memo_get(k.into())?;
                    self.stack.push(id);
                }
                b'g' => {
                    let at = self.at as u64;
                    let k: u64 = self.line_str()?.parse().map_err(|_| PickleError::BadText {
                        offset: at,
                        opcode: "GET",
                    })?;
                    let id = self.memo_get(k)?;
                    self.stack.push(id);
                }
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let node = self.global(&module, &name)?;
                    self.push(node);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(m), Node::Str(n)) = (&self.nodes[module], &self.nodes[name])
                    else {
                        return Err(self.wrong("two strings (module, name)", name));
                    };
                    let (m, n) = (m.clone(), n.clone());
                    let node = self.global(&m, &n)?;
                    self.push(node);
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let node = self.global(&module, &name)?;
                    self.nodes.push(node);
                    let class = self.nodes.len() - 1;
                    let args = self.pop_mark()?;
                    let obj = self.call(class, args)?;
                    self.stack.push(obj);
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(PickleError::StackUnderflow {
                            offset: self.at as u64,
                            opcode: self.op,
                        });
                    }
                    let class = items.remove(0);
                    let obj = self.call(class, items)?;
                    self.stack.push(obj);
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let args = match &self.nodes[args] {
                        Node::Tuple(items) => items.clone(),
                        _ => return Err(self.wrong("a tuple of arguments", args)),
                    };
                    let obj = self.call(func, args)?;
                    self.stack.push(obj);
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let args = match &self.nodes[args] {
                        Node::Tuple(items) => items.clone(),
                        _ => return Err(self.wrong("a tuple of arguments", args)),
                    };
                    match &self.nodes[kwargs] {
                        Node::Dict(d) if d.is_empty() => {}
                        _ => return Err(self.wrong("no keyword arguments", kwargs)),
                    }
                    let obj = self.call(class, args)?;
                    self.stack.push(obj);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    self.build(obj, state)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let node = self.persistent(pid)?;
                    self.push(node);
                }
                b'P' => {
                    let s = self.line_str()?;
                    self.nodes.push(Node::Str(s));
                    let pid = self.nodes.len() - 1;
                    let node = self.persistent(pid)?;
                    self.push(node);
                }
                _ => {
                    return Err(PickleError::UnsupportedOpcode {
                        offset: self.at as u64,
                        opcode: code,
                        name: self.op,
                    });
                }
            }
        }
    }

    fn utf8(&mut self, n: u64) -> Result<String, PickleError> {
        let at = self.at as u64;
        let b = self.take_declared(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| PickleError::NotUtf8 { offset: at })
    }

    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>, PickleError> {
        if items.len() % 2 != 0 {
            return Err(PickleError::OddItems {
                offset: self.at as u64,
                opcode: self.op,
            });
        }
        Ok(items.chunks(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend_list(&mut self, list: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.nodes[list] {
            Node::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.wrong("list", list)),
        }
    }

    fn extend_dict(&mut self, dict: Id, pairs: Vec<(Id, Id)>) -> Result<(), PickleError> {
        match &mut self.nodes[dict] {
            Node::Dict(d) => {
                d.extend(pairs);
                Ok(())
            }
            _ => Err(self.wrong("dict", dict)),
        }
    }

    fn bad_args(&self, callable: &Global, reason: String) -> PickleError {
        PickleError::BadArguments {
            offset: self.at as u64,
            callable: callable.dotted(),
            reason,
        }
    }

    fn int_arg(&self, g: &Global, id: Id, what: &str) -> Result<u64, PickleError> {
        match self.nodes[id] {
            Node::Int(v) => {
                u64::try_from(v).map_err(|_| self.bad_args(g, format!("{what} is negative ({v})")))
            }
            _ => Err(self.bad_args(g, format!("{what} is a {}, not an int", self.kind(id)))),
        }
    }

    fn ints_arg(&self, g: &Global, id: Id, what: &str) -> Result<Vec<u64>, PickleError> {
        match &self.nodes[id] {
            Node::Tuple(items) | Node::List(items) => {
                items.iter().map(|&i| self.int_arg(g, i, what)).collect()
            }
            _ => Err(self.bad_args(g, format!("{what} is a {}, not a tuple", self.kind(id)))),
        }
    }

    /// What calling the global `func` with `args` stands for, built as data.
    fn call(&mut self, func: Id, args: Vec<Id>) -> Result<Id, PickleError> {
        if let (Node::Class(_, Known::Identity), Some(&first)) = (&self.nodes[func], args.first()) {
            // TorchScript's list helpers return their argument itself.
            if args.len() <= 2 {
                return Ok(first);
            }
        }
        let node = self.make(func, args)?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn make(&mut self, func: Id, args: Vec<Id>) -> Result<Node, PickleError> {
        let (g, k) = match &self.nodes[func] {
            Node::Class(g, k) => (g.clone(), k.clone()),
            _ => return Err(self.wrong("a class or function", func)),
        };
        let arity = |n: std::ops::RangeInclusive<usize>| -> Result<(), PickleError> {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                Err(self.bad_args(
                    &g,
                    format!(
                        "{} arguments, expected {} to {}",
                        args.len(),
                        n.start(),
                        n.end()
                    ),
                ))
            }
        };
        match k {
            Known::RebuildTensorV2 | Known::RebuildTensorV3 => {
                let v3 = k == Known::RebuildTensorV3;
                // _rebuild_tensor(storage, offset, size, stride) in old files.
                arity(if v3 { 7..=8 } else { 4..=7 })?;
                let storage = match &self.nodes[args[0]] {
                    Node::Storage(s) => s.clone(),
                    _ => {
                        return Err(
                            self.bad_args(&g, format!("its storage is a {}", self.kind(args[0])))
                        );
                    }
                };
                let storage_offset = self.int_arg(&g, args[1], "the storage offset")?;
                let shape = self.ints_arg(&g, args[2], "the size")?;
                let strides = self.ints_arg(&g, args[3], "the stride")?;
                if shape.len() != strides.len() {
                    return Err(self.bad_args(
                        &g,
                        format!(
                            "size has {} dimensions but stride has {}",
                            shape.len(),
                            strides.len()
                        ),
                    ));
                }
                let requires_grad =
                    matches!(args.get(4).map(|&i| &self.nodes[i]), Some(Node::Bool(true)));
                let dtype = if v3 {
                    match &self.nodes[args[6]] {
                        Node::Class(d, Known::Dtype) => Some(d.name.clone()),
                        _ => {
                            return Err(
                                self.bad_args(&g, format!("its dtype is a {}", self.kind(args[6])))
                            );
                        }
                    }
                } else {
                    None
                };
                Ok(Node::Tensor(Box::new(RawTensor {
                    storage,
                    storage_offset,
                    shape,
                    strides,
                    dtype,
                    parameter: false,
                    requires_grad,
                })))
            }
            Known::RebuildParameter => {
                arity(3..=4)?;
                match &self.nodes[args[0]] {
                    Node::Tensor(t) => {
                        let mut t = t.clone();
                        t.parameter = true;
                        t.requires_grad = matches!(self.nodes[args[1]], Node::Bool(true));
                        Ok(Node::Tensor(t))
                    }
                    _ => Err(self.bad_args(&g, format!("its data is a {}", self.kind(args[0])))),
                }
            }
            Known::RebuildFromType => {
                arity(4..=4)?;
                match &self.nodes[args[1]] {
                    Node::Class(_, Known::TensorType) => {}
                    _ => {
                        return Err(
                            self.bad_args(&g, "the type is not torch.Tensor or Parameter".into())
                        );
                    }
                }
                let inner = match &self.nodes[args[2]] {
                    Node::Tuple(items) => items.clone(),
                    _ => return Err(self.bad_args(&g, "its arguments are not a tuple".into())),
                };
                self.make(args[0], inner)
            }
            Known::UnsupportedTensor => Err(PickleError::UnsupportedTensor {
                offset: self.at as u64,
                rebuild: g.dotted(),
            }),
            Known::OrderedDict => {
                arity(0..=1)?;
                match args.first().map(|&a| &self.nodes[a]) {
                    None => Ok(Node::Dict(Vec::new())),
                    Some(Node::List(items) | Node::Tuple(items)) => {
                        let mut pairs = Vec::new();
                        for &p in items {
                            match &self.nodes[p] {
                                Node::Tuple(kv) | Node::List(kv) if kv.len() == 2 => {
                                    pairs.push((kv[0], kv[1]));
                                }
                                _ => {
                                    return Err(self.bad_args(
                                        &g,
                                        "an item is not a (key, value) pair".into(),
                                    ));
                                }
                            }
                        }
                        Ok(Node::Dict(pairs))
                    }
                    Some(Node::Dict(d)) => Ok(Node::Dict(d.clone())),
                    Some(_) => Err(self.bad_args(&g, "its argument is not a list of pairs".into())),
                }
            }
            Known::Size => {
                arity(0..=1)?;
                match args.first().map(|&a| &self.nodes[a]) {
                    None => Ok(Node::Tuple(Vec::new())),
                    Some(Node::Tuple(items) | Node::List(items)) => Ok(Node::Tuple(items.clone())),
                    Some(_) => Err(self.bad_args(&g, "its argument is not a tuple".into())),
                }
            }
            Known::Identity => {
                Err(self.bad_args(&g, format!("{} arguments, expected 1 or 2", args.len())))
            }
            Known::CodecsEncode => {
                arity(1..=2)?;
                let text = match &self.nodes[args[0]] {
                    Node::Str(s) => s.clone(),
                    _ => return Err(self.bad_args(&g, "its text is not a str".into())),
                };
                let latin1 = match args.get(1).map(|&a| &self.nodes[a]) {
                    Some(Node::Str(enc)) => matches!(enc.as_str(), "latin1" | "latin-1"),
                    _ => false,
                };
                if !latin1 {
                    return Err(self.bad_args(&g, "only the latin1 encoding is read".into()));
                }
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    let b = u8::try_from(u32::from(c))
                        .map_err(|_| self.bad_args(&g, "a character is not latin1".into()))?;
                    out.push(b);
                }
                Ok(Node::Bytes(out))
            }
            Known::Set => {
                arity(0..=1)?;
                match args.first().map(|&a| &self.nodes[a]) {
                    None => Ok(Node::Set(Vec::new())),
                    Some(Node::List(items) | Node::Tuple(items) | Node::Set(items)) => {
                        Ok(Node::Set(items.clone()))
                    }
                    Some(_) => Err(self.bad_args(&g, "its argument is not a list".into())),
                }
            }
            Known::Bytes => {
                arity(0..=2)?;
                match args.first().map(|&a| &self.nodes[a]) {
                    None => Ok(Node::Bytes(Vec::new())),
                    Some(Node::Bytes(b)) => Ok(Node::Bytes(b.clone())),
                    Some(_) => Err(self.bad_args(&g, "its argument is not bytes".into())),
                }
            }
            Known::Reconstructor => {
                arity(3..=3)?;
                match &self.nodes[args[0]] {
                    Node::Class(_, Known::Allowed) => self.make(args[0], Vec::new()),
                    Node::Class(c, _) => Err(self.bad_args(
                        &g,
                        format!(
                            "`{}` cannot be made this way",
                            crate::text::Escaped(&c.dotted())
                        ),
                    )),
                    _ => Err(self.bad_args(&g, "its class is not a class".into())),
                }
            }
            Known::NumpyScalar => {
                arity(1..=2)?;
                if let Some(n) = args.get(1).and_then(|&b| self.numpy_scalar(args[0], b)) {
                    return Ok(n);
                }
                Ok(Node::Object {
                    class: g,
                    args,
                    state: None,
                })
            }
            Known::DataObject | Known::Builtin | Known::Allowed | Known::NumpyDtype => {
                Ok(Node::Object {
                    class: g,
                    args,
                    state: None,
                })
            }
            Known::Storage(_) | Known::Dtype | Known::TensorType => {
                Err(PickleError::BadArguments {
                    offset: self.at as u64,
                    callable: g.dotted(),
                    reason: "it is not called when a checkpoint is loaded".into(),
                })
            }
        }
    }

    /// The number a numpy scalar of a plain little-endian dtype holds.
    fn numpy_scalar(&self, dtype: Id, bytes: Id) -> Option<Node> {
        let Node::Object { class, args, state } = &self.nodes[dtype] else {
            return None;
        };
        if class.name != "dtype" {
            return None;
        }
        let Node::Str(code) = &self.nodes[*args.first()?] else {
            return None;
        };
        // The state tuple's second item is the byte order: `<`, `|` or `=`.
        if let Some(Node::Tuple(st)) = state.map(|s| &self.nodes[s]) {
            match st.get(1).map(|&o| &self.nodes[o]) {
                Some(Node::Str(o)) if o == "<" || o == "|" || o == "=" => {}
                _ => return None,
            }
        }
        let Node::Bytes(b) = &self.nodes[bytes] else {
            return None;
        };
        let arr = |n: usize| -> Option<[u8; 8]> {
            let mut a = [0u8; 8];
            (b.len() == n).then(|| a[..n].copy_from_slice(b))?;
            Some(a)
        };
        let sext = |n: usize| -> Option<i64> {
            let a = arr(n)?;
            let shift = 64 - 8 * n as u32;
            Some((i64::from_le_bytes(a) << shift) >> shift)
        };
        Some(match code.as_str() {
            "f8" => Node::Float(f64::from_le_bytes(arr(8)?)),
            "f4" => {
                let a = arr(4)?;
                Node::Float(f32::from_le_bytes([a[0], a[1], a[2], a[3]]).into())
            }
            "i8" | "i4" | "i2" | "i1" => Node::Int(sext(code[1..].parse().ok()?)?),
            "u4" | "u2" | "u1" => Node::Int(i64::from_le_bytes(arr(code[1..].parse().ok()?)?)),
            "b1" => Node::Bool(arr(1)?[0] != 0),
            _ => return None,
        })
    }

    fn build(&mut self, obj: Id, state: Id) -> Result<(), PickleError> {
        match &mut self.nodes[obj] {
            Node::Object { state: s, .. } => {
                *s = Some(state);
                Ok(())
            }
            // Tensor.__setstate__ of old files and OrderedDict's instance
            // attributes (`_metadata` of a state dict): data we do not keep.
            Node::Tensor(_) | Node::Dict(_) => Ok(()),
            _ => Err(self.wrong("an object to give state to", obj)),
        }
    }

    /// `persistent_load`: a storage reference from its id tuple.
    fn persistent(&mut self, pid: Id) -> Result<Node, PickleError> {
        let at = self.at as u64;
        let bad = |reason: String| PickleError::BadPersistentId { offset: at, reason };
        if let Some(objects) = self.opts.tar_objects {
            let key = match &self.nodes[pid] {
                Node::Int(i) => Some(Value::Int(*i)),
                Node::Str(s) => Some(Value::Str(s.clone())),
                Node::Bytes(b) => Some(Value::Bytes(b.clone())),
                // (class, source file, source): a whole nn.Module was saved.
                Node::Tuple(_) => {
                    return Err(bad(
                        "it saves a whole nn.Module class (torch.save(model)); save model.state_dict() instead"
                            .into(),
                    ));
                }
                _ => None,
            }
            .as_ref()
            .and_then(super::tar::int_key)
            .ok_or_else(|| bad(format!("it is a {}, not a key", self.kind(pid))))?;
            return match objects.get(&key) {
                Some(Value::Tensor(t)) => Ok(Node::Tensor(t.clone())),
                Some(Value::Storage(s)) => Ok(Node::Storage((**s).clone())),
                _ => Err(bad(format!(
                    "key {key} names no tensor or storage of the archive"
                ))),
            };
        }
        let items = match &self.nodes[pid] {
            Node::Tuple(items) | Node::List(items) => items.clone(),
            _ => return Err(bad(format!("it is a {}, not a tuple", self.kind(pid)))),
        };
        let text = |id: Id| -> Option<String> {
            match &self.nodes[id] {
                Node::Str(s) => Some(s.clone()),
                Node::Bytes(b) => String::from_utf8(b.clone()).ok(),
                Node::Int(i) => Some(i.to_string()),
                _ => None,
            }
        };
        match items.first().and_then(|&t| text(t)).as_deref() {
            Some("storage") => {}
            Some("module") => {
                return Err(bad(
                    "it saves a whole nn.Module class (torch.save(model)); save model.state_dict() instead"
                        .into(),
                ));
            }
            Some(other) => {
                return Err(bad(format!(
                    "unknown type `{}`",
                    crate::text::Escaped(other)
                )));
            }
            None => return Err(bad("its type is not a string".into())),
        }
        if !(5..=6).contains(&items.len()) {
            return Err(bad(format!("{} items, expected 5 or 6", items.len())));
        }
        let class = match &self.nodes[items[1]] {
            Node::Class(_, Known::Storage(name)) => name.clone(),
            Node::Class(g, _) => return Err(bad(format!("`{g}` is not a storage class"))),
            _ => return Err(bad("its storage class is not a class".into())),
        };
        let key = text(items[2]).ok_or_else(|| bad("its key is not a string".into()))?;
        let location = text(items[3]).ok_or_else(|| bad("its location is not a string".into()))?;
        let numel = match self.nodes[items[4]] {
            Node::Int(n) if n >= 0 => n as u64,
            _ => return Err(bad("its size is not a non-negative int".into())),
        };
        let view = match items.get(5).map(|&v| &self.nodes[v]) {
            None | Some(Node::None) => None,
            Some(Node::Tuple(v)) if v.len() == 3 => {
                let num = |id: Id| match self.nodes[id] {
                    Node::Int(n) if n >= 0 => Some(n as u64),
                    _ => None,
                };
                let (Some(off), Some(len)) = (num(v[1]), num(v[2])) else {
                    return Err(bad("its view offset or size is not an int".into()));
                };
                Some((off, len))
            }
            Some(_) => return Err(bad("its view is not (key, offset, size)".into())),
        };
        Ok(Node::Storage(StorageRef {
            key,
            class,
            location,
            numel,
            view,
        }))
    }

    /// The nodes `id` refers to.
    fn children(&self, id: Id) -> Vec<Id> {
        match &self.nodes[id] {
            Node::List(items) | Node::Tuple(items) | Node::Set(items) => items.clone(),
            Node::Dict(pairs) => pairs.iter().flat_map(|&(k, v)| [k, v]).collect(),
            Node::Object { args, state, .. } => args.iter().copied().chain(*state).collect(),
            _ => Vec::new(),
        }
    }

    /// The number of values and the height of the tree below `id` once
    /// shared nodes are copied, memoised per node; refuses cycles, trees
    /// deeper than [`MAX_DEPTH`] and larger than [`MAX_VALUES`]. Recursion
    /// is bounded by `MAX_DEPTH`.
    fn measure(
        &self,
        id: Id,
        depth: usize,
        on_path: &mut [bool],
        memo: &mut [Option<(usize, usize)>],
    ) -> Result<(usize, usize), PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep { max: MAX_DEPTH });
        }
        if let Some((size, height)) = memo[id] {
            if depth + height > MAX_DEPTH + 1 {
                return Err(PickleError::TooDeep { max: MAX_DEPTH });
            }
            return Ok((size, height));
        }
        if on_path[id] {
            return Err(PickleError::Recursive);
        }
        on_path[id] = true;
        let (mut size, mut height) = (1usize, 1usize);
        for c in self.children(id) {
            let (s, h) = self.measure(c, depth + 1, on_path, memo)?;
            size = size.saturating_add(s);
            height = height.max(h + 1);
            if size > MAX_VALUES {
                return Err(PickleError::TooManyValues { max: MAX_VALUES });
            }
        }
        on_path[id] = false;
        memo[id] = Some((size, height));
        Ok((size, height))
    }

    /// The tree below `id`, with shared nodes copied, cycles refused and
    /// depth and size bounded.
    fn expand(
        &self,
        id: Id,
        depth: usize,
        budget: &mut usize,
        on_path: &mut [bool],
    ) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep { max: MAX_DEPTH });
        }
        if *budget == 0 {
            return Err(PickleError::TooManyValues { max: MAX_VALUES });
        }
        *budget -= 1;
        if on_path[id] {
            return Err(PickleError::Recursive);
        }
        on_path[id] = true;
        let seq = |items: &[Id], budget: &mut usize, on_path: &mut [bool]| {
            items
                .iter()
                .map(|&i| self.expand(i, depth + 1, budget, on_path))
                .collect::<Result<Vec<_>, _>>()
        };
        let v = match &self.nodes[id] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::BigInt(b) => Value::BigInt(b.clone()),
            Node::Float(x) => Value::Float(*x),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::List(items) => Value::List(seq(items, budget, on_path)?),
            Node::Tuple(items) => Value::Tuple(seq(items, budget, on_path)?),
            Node::Set(items) => Value::Set(seq(items, budget, on_path)?),
            Node::Dict(pairs) => {
                let mut out = Vec::with_capacity(pairs.len());
                for &(k, v) in pairs {
                    let k = self.expand(k, depth + 1, budget, on_path)?;
                    let v = self.expand(v, depth + 1, budget, on_path)?;
                    out.push((k, v));
                }
                Value::Dict(out)
            }
            Node::Class(g, _) => Value::Global(Box::new(g.clone())),
            Node::Object { class, args, state } => {
                let args = seq(args, budget, on_path)?;
                let state = match state {
                    Some(s) => Some(self.expand(*s, depth + 1, budget, on_path)?),
                    None => None,
                };
                Value::Object(Box::new(Object {
                    class: class.clone(),
                    args,
                    state,
                }))
            }
            Node::Storage(s) => Value::Storage(Box::new(s.clone())),
            Node::Tensor(t) => Value::Tensor(t.clone()),
        };
        on_path[id] = false;
        Ok(v)
    }
}

fn long_node(bytes: Vec<u8>) -> Node {
    if bytes.len() <= 8 {
        let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut a = [fill; 8];
        a[..bytes.len()].copy_from_slice(&bytes);
        Node::Int(i64::from_le_bytes(a))
    } else {
        Node::BigInt(bytes)
    }
}

fn py2_str(b: Vec<u8>) -> Node {
    match String::from_utf8(b) {
        Ok(s) => Node::Str(s),
        Err(e) => Node::Bytes(e.into_bytes()),
    }
}

/// The body of a protocol-0 `STRING` line: `'text'` or `"text"` with
/// Python escapes.
fn string_literal(line: &[u8]) -> Option<Vec<u8>> {
    let q = *line.first()?;
    if !(q == b'\'' || q == b'"') || line.len() < 2 || *line.last()? != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        out.push(match e {
            b'\\' => b'\\',
            b'\'' => b'\'',
            b'"' => b'"',
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'0' => 0,
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                i += 2;
                u8::from_str_radix(h, 16).ok()?
            }
            _ => return None,
        });
    }
    Some(out)
}

/// A protocol-0 `UNICODE` line: raw-unicode-escape (`\uXXXX`, `\UXXXXXXXX`).
fn raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c == b'\\' && matches!(line.get(i + 1), Some(b'u' | b'U')) {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            let h = std::str::from_utf8(line.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(h, 16).ok()?)?);
            i += 2 + n;
        } else {
            // Latin-1 for everything else.
            out.push(char::from(c));
            i += 1;
        }
    }
    Some(out)
}

/// The name of an opcode byte, for messages.
pub fn opcode_name(code: u8) -> &'static str {
    match code {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

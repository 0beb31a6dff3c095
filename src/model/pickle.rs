//! A bounded reader for the pickles inside PyTorch checkpoints: the pickle is interpreted as data, never
//! run, with limits on everything a hostile file could inflate.
//!
//! candle's reader (`candle_core::pickle::Stack`) is the maintained one, but it has no bounds: a 1.3 KB
//! pickle of repeated memo references expands past 4 GB, 400 KB of nested lists overflows the stack,
//! and a storage may declare any size. This reader is written for the subset a state dict needs and
//! keeps every structure bounded:
//! - memo references share the object (`Rc`), and each value carries its expanded size (`weight`) and
//!   nesting `depth`, both checked against [`Limits`] as the value is built, so no later walk over the
//!   result can be exponential or recurse without bound;
//! - every length read from the file is checked against the bytes that remain before anything is
//!   allocated, and the memo, the stack and the work done on copies are capped;
//! - a class or function is checked against the allow-list the moment the pickle names it
//!   (`GLOBAL`, `STACK_GLOBAL`); anything else is refused with its name, before any further reading.

use std::collections::HashMap;
use std::rc::Rc;

/// The limits a pickle is read under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of containers.
    pub max_depth: u32,
    /// Most nodes any value may expand to (memo references counted each time they are used).
    pub max_weight: u64,
    /// Most memo entries.
    pub max_memo: usize,
    /// Most items on the stack at once.
    pub max_stack: usize,
    /// Most container items created or copied over the whole pickle.
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_weight: 20_000_000,
            max_memo: 2_000_000,
            max_stack: 4_000_000,
            max_work: 40_000_000,
        }
    }
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The storage class (`FloatStorage`, `HalfStorage`, …).
    pub class: String,
    /// The record name inside the archive (`data/<key>`).
    pub key: String,
    /// Declared number of elements.
    pub numel: u64,
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`: a view into a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage it views.
    pub storage: Rc<StorageRef>,
    /// Offset of its first element, in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
}

/// A sequence (list, tuple, set) with its expanded size and depth.
#[derive(Debug, Clone, Default)]
pub struct Seq {
    /// Items.
    pub items: Vec<Value>,
    weight: u64,
    depth: u32,
}

/// Key/value pairs of a dict, in order, with their expanded size and depth.
#[derive(Debug, Clone, Default)]
pub struct Pairs {
    /// Entries in insertion order.
    pub items: Vec<(Value, Value)>,
    weight: u64,
    depth: u32,
}

/// A call or object construction the pickle describes (never performed).
#[derive(Debug, Clone)]
pub struct Call {
    /// What would be called.
    pub callable: Value,
    /// Its arguments (and for `BUILD`, the state).
    pub args: Value,
    weight: u64,
    depth: u32,
}

/// A pickled value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A text string.
    Str(Rc<str>),
    /// A byte string (its length only: no checkpoint needs the bytes).
    Bytes(usize),
    /// A list.
    List(Rc<Seq>),
    /// A tuple.
    Tuple(Rc<Seq>),
    /// A set or frozenset.
    Set(Rc<Seq>),
    /// A dict or `collections.OrderedDict`.
    Dict(Rc<Pairs>),
    /// A class or function named by the pickle (already allowed).
    Global(Rc<(String, String)>),
    /// A described call that is not one of the rebuild functions.
    Call(Rc<Call>),
    /// A storage (persistent id).
    Storage(Rc<StorageRef>),
    /// A tensor.
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn weight(&self) -> u64 {
        match self {
            Value::List(s) | Value::Tuple(s) | Value::Set(s) => s.weight,
            Value::Dict(p) => p.weight,
            Value::Call(c) => c.weight,
            Value::Tensor(t) => 1 + t.shape.len() as u64 * 2,
            _ => 1,
        }
    }

    fn depth(&self) -> u32 {
        match self {
            Value::List(s) | Value::Tuple(s) | Value::Set(s) => s.depth,
            Value::Dict(p) => p.depth,
            Value::Call(c) => c.depth,
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class",
            Value::Call(_) => "object",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {at}: {detail}")]
pub struct PickleError {
    /// Offset of the opcode in the pickle.
    pub at: usize,
    /// What is wrong.
    pub detail: String,
}

impl PickleError {
    /// What is wrong, then where.
    pub fn detail_at(&self) -> String {
        format!("{} (pickle byte {})", self.detail, self.at)
    }
}

/// Classes and functions a state dict (or fastai's `{"model": …, "opt": …}`) refers to.
pub fn allowed(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("torch._utils", "_rebuild_tensor_v2")
            | ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state")
            | ("collections", "OrderedDict")
            | ("torch", "Size")
    ) || (module == "torch" && storage_class(name))
}

fn storage_class(name: &str) -> bool {
    matches!(
        name,
        "FloatStorage"
            | "DoubleStorage"
            | "HalfStorage"
            | "BFloat16Storage"
            | "ByteStorage"
            | "BoolStorage"
            | "CharStorage"
            | "ShortStorage"
            | "IntStorage"
            | "LongStorage"
    )
}

fn seq(items: Vec<Value>, limits: &Limits) -> Result<Rc<Seq>, String> {
    let mut weight: u64 = 1;
    let mut depth = 0;
    for v in &items {
        weight = weight.saturating_add(v.weight());
        depth = depth.max(v.depth() + 1);
    }
    check_size(weight, depth, limits)?;
    Ok(Rc::new(Seq {
        items,
        weight,
        depth,
    }))
}

fn check_size(weight: u64, depth: u32, limits: &Limits) -> Result<(), String> {
    if depth > limits.max_depth {
        return Err(format!(
            "containers nested deeper than {} levels (a state dict needs a few)",
            limits.max_depth
        ));
    }
    if weight > limits.max_weight {
        return Err(format!(
            "a value expands to more than {} objects (repeated memo references?)",
            limits.max_weight
        ));
    }
    Ok(())
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    limits: Limits,
    work: u64,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "declares {n} bytes but only {left} remain in the pickle"
            ));
        }
        let n = n as usize;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N as u64)?;
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        Ok(b)
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .take(4096)
            .position(|&b| b == b'\n')
            .ok_or("a text argument without an end of line within 4096 bytes")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "a text argument that is not UTF-8".into())
    }

    fn charge(&mut self, n: u64) -> Result<(), String> {
        self.work = self.work.saturating_add(n);
        if self.work > self.limits.max_work {
            return Err(format!(
                "more than {} container items built or copied",
                self.limits.max_work
            ));
        }
        Ok(())
    }

    fn push(&mut self, v: Value) -> Result<(), String> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(format!(
                "more than {} items on the stack",
                self.limits.max_stack
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("pops past a mark".into());
        }
        self.stack.pop().ok_or_else(|| "pops an empty stack".into())
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("needs a value above the mark".into());
        }
        self.stack
            .last_mut()
            .ok_or_else(|| "the stack is empty".into())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let m = self.marks.pop().ok_or("no mark to pop to")?;
        let items = self.stack.split_off(m);
        self.charge(items.len() as u64)?;
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(format!("more than {} memo entries", self.limits.max_memo));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("refers to memo entry {key}, which was never stored"))?;
        self.push(v)
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<(), String> {
        let s = seq(items, &self.limits)?;
        self.push(Value::Tuple(s))
    }

    /// Adds items to the list or set on top of the stack.
    fn extend(&mut self, items: Vec<Value>) -> Result<(), String> {
        let limits = self.limits;
        let copy_cost = match self.top()? {
            Value::List(s) | Value::Set(s) if Rc::strong_count(s) > 1 => s.items.len() as u64,
            _ => 0,
        };
        self.charge(copy_cost + items.len() as u64)?;
        match self.top()? {
            Value::List(s) | Value::Set(s) => {
                let s = Rc::make_mut(s);
                for v in items {
                    s.weight = s.weight.saturating_add(v.weight());
                    s.depth = s.depth.max(v.depth() + 1);
                    s.items.push(v);
                }
                check_size(s.weight, s.depth, &limits)
            }
            other => Err(format!("appends to a {}, not a list", other.kind())),
        }
    }

    /// Sets items of the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("an odd number of items for a dict".into());
        }
        let limits = self.limits;
        let copy_cost = match self.top()? {
            Value::Dict(p) if Rc::strong_count(p) > 1 => p.items.len() as u64,
            _ => 0,
        };
        self.charge(copy_cost + items.len() as u64)?;
        match self.top()? {
            Value::Dict(p) => {
                let p = Rc::make_mut(p);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    p.weight = p
                        .weight
                        .saturating_add(k.weight())
                        .saturating_add(v.weight());
                    p.depth = p.depth.max(k.depth() + 1).max(v.depth() + 1);
                    p.items.push((k, v));
                }
                check_size(p.weight, p.depth, &limits)
            }
            other => Err(format!("sets items on a {}, not a dict", other.kind())),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), String> {
        if !allowed(module, name) {
            return Err(format!(
                "the checkpoint refers to {module}.{name}, which is code or an object, not weights; refused \
                 without running it (save a state dict: torch.save(model.state_dict(), …) or fastai's learn.save)"
            ));
        }
        self.push(Value::Global(Rc::new((
            module.to_string(),
            name.to_string(),
        ))))
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<Value, String> {
        if let Value::Global(g) = &callable {
            match (g.0.as_str(), g.1.as_str()) {
                ("collections", "OrderedDict") => {
                    return match &args {
                        Value::Tuple(t) if t.items.is_empty() => Ok(Value::Dict(Rc::new(Pairs {
                            items: Vec::new(),
                            weight: 1,
                            depth: 0,
                        }))),
                        _ => Err("OrderedDict built from arguments; expected an empty one".into()),
                    };
                }
                ("torch._utils", "_rebuild_tensor_v2") => return rebuild_tensor(&args),
                ("torch._utils", "_rebuild_parameter")
                | ("torch._utils", "_rebuild_parameter_with_state") => {
                    return match &args {
                        Value::Tuple(t) => match t.items.first() {
                            Some(v @ Value::Tensor(_)) => Ok(v.clone()),
                            _ => {
                                Err("a parameter rebuilt from something other than a tensor".into())
                            }
                        },
                        _ => Err("a parameter rebuilt without an argument tuple".into()),
                    };
                }
                ("torch", "Size") => {
                    return match &args {
                        Value::Tuple(t) => match t.items.first() {
                            Some(v @ Value::Tuple(_)) => Ok(v.clone()),
                            _ => Err("torch.Size of something other than a tuple".into()),
                        },
                        _ => Err("torch.Size without an argument tuple".into()),
                    };
                }
                _ => {}
            }
        }
        let weight = 1u64
            .saturating_add(callable.weight())
            .saturating_add(args.weight());
        let depth = (callable.depth() + 1).max(args.depth() + 1);
        check_size(weight, depth, &self.limits)?;
        Ok(Value::Call(Rc::new(Call {
            callable,
            args,
            weight,
            depth,
        })))
    }

    fn persistent(&mut self, pid: Value) -> Result<Value, String> {
        let Value::Tuple(t) = &pid else {
            return Err(format!(
                "a persistent id that is a {}, not a tuple",
                pid.kind()
            ));
        };
        match t.items.as_slice() {
            [
                Value::Str(tag),
                Value::Global(class),
                Value::Str(key),
                _location,
                Value::Int(numel),
            ] if &**tag == "storage" && class.0 == "torch" && storage_class(&class.1) => {
                let numel = u64::try_from(*numel)
                    .map_err(|_| format!("storage {key} declares {numel} elements"))?;
                if key.is_empty()
                    || key.len() > 64
                    || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(format!(
                        "a storage key {key:?} that is not a plain record name"
                    ));
                }
                Ok(Value::Storage(Rc::new(StorageRef {
                    class: class.1.clone(),
                    key: key.to_string(),
                    numel,
                })))
            }
            _ => Err("a persistent id that is not a tensor storage".into()),
        }
    }

    fn step(&mut self) -> Result<bool, String> {
        let op = self.u8()?;
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} (at most 5 is known)"));
                }
            }
            0x95 => {
                self.le::<8>()?; // FRAME: a length hint only
            }
            b'.' => return Ok(true),
            b'(' => {
                if self.marks.len() >= self.limits.max_depth as usize * 4 {
                    return Err("too many open marks".into());
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v)?;
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'I' => {
                let line = self.line()?;
                let v = match line {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    s => Value::Int(s.parse().map_err(|_| format!("INT {s:?}"))?),
                };
                self.push(v)?;
            }
            b'L' => {
                let line = self.line()?;
                let s = line.strip_suffix('L').unwrap_or(line);
                let v = s
                    .parse()
                    .map_err(|_| format!("LONG {s:?} beyond 64 bits"))?;
                self.push(Value::Int(v))?;
            }
            b'J' => {
                let v = i32::from_le_bytes(self.le()?);
                self.push(Value::Int(v.into()))?;
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()))?;
            }
            b'M' => {
                let v = u16::from_le_bytes(self.le()?);
                self.push(Value::Int(v.into()))?;
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    u64::from(self.u8()?)
                } else {
                    let n = i32::from_le_bytes(self.le()?);
                    u64::try_from(n).map_err(|_| "LONG4 with a negative length")?
                };
                if n > 8 {
                    return Err(format!("an integer of {n} bytes (beyond 64 bits)"));
                }
                let bytes = self.take(n)?;
                let mut buf = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                    [0xffu8; 8]
                } else {
                    [0u8; 8]
                };
                buf[..bytes.len()].copy_from_slice(bytes);
                self.push(Value::Int(i64::from_le_bytes(buf)))?;
            }
            b'F' => {
                let line = self.line()?;
                let v = line.parse().map_err(|_| format!("FLOAT {line:?}"))?;
                self.push(Value::Float(v))?;
            }
            b'G' => {
                let v = f64::from_be_bytes(self.le()?);
                self.push(Value::Float(v))?;
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => u64::from(u32::from_le_bytes(self.le()?)),
                    0x8c => u64::from(self.u8()?),
                    _ => u64::from_le_bytes(self.le()?),
                };
                let s =
                    std::str::from_utf8(self.take(n)?).map_err(|_| "a string that is not UTF-8")?;
                self.push(Value::Str(Rc::from(s)))?;
            }
            b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'T' => {
                        let n = i32::from_le_bytes(self.le()?);
                        u64::try_from(n).map_err(|_| "BINSTRING with a negative length")?
                    }
                    b'B' => u64::from(u32::from_le_bytes(self.le()?)),
                    b'U' | b'C' => u64::from(self.u8()?),
                    _ => u64::from_le_bytes(self.le()?),
                };
                self.take(n)?;
                self.push(Value::Bytes(n as usize))?;
            }
            b']' => self.push(Value::List(Rc::new(Seq {
                items: Vec::new(),
                weight: 1,
                depth: 0,
            })))?,
            b'}' => self.push(Value::Dict(Rc::new(Pairs {
                items: Vec::new(),
                weight: 1,
                depth: 0,
            })))?,
            0x8f => self.push(Value::Set(Rc::new(Seq {
                items: Vec::new(),
                weight: 1,
                depth: 0,
            })))?,
            b')' => self.tuple(Vec::new())?,
            b'a' => {
                let v = self.pop()?;
                self.extend(vec![v])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.extend(items)?;
            }
            b'l' => {
                let items = self.pop_mark()?;
                let s = seq(items, &self.limits)?;
                self.push(Value::List(s))?;
            }
            0x91 => {
                let items = self.pop_mark()?;
                let s = seq(items, &self.limits)?;
                self.push(Value::Set(s))?;
            }
            b't' => {
                let items = self.pop_mark()?;
                self.tuple(items)?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.tuple(items)?;
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Rc::new(Pairs {
                    items: Vec::new(),
                    weight: 1,
                    depth: 0,
                })))?;
                self.set_items(items)?;
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&module, &name) {
                    (Value::Str(m), Value::Str(n)) => {
                        let (m, n) = (m.clone(), n.clone());
                        self.global(&m, &n)?;
                    }
                    _ => return Err("STACK_GLOBAL without two strings".into()),
                }
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.call(callable, args)?;
                self.push(v)?;
            }
            0x92 => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let both = seq(vec![args, kwargs], &self.limits)?;
                let v = self.call(class, Value::Tuple(both))?;
                self.push(v)?;
            }
            b'b' => {
                let state = self.pop()?;
                let obj = self.pop()?;
                // Building a dict sets attributes (OrderedDict's `_metadata`); the items stay as they are.
                let v = match obj {
                    Value::Dict(_) | Value::Tensor(_) => obj,
                    other => self.call(other, state)?,
                };
                self.push(v)?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let v = self.persistent(pid)?;
                self.push(v)?;
            }
            b'P' => {
                let line = self.line()?;
                return Err(format!(
                    "a text persistent id {line:?}, not a tensor storage"
                ));
            }
            b'g' => {
                let line = self.line()?;
                let key = line.parse().map_err(|_| format!("GET {line:?}"))?;
                self.memo_get(key)?;
            }
            b'h' => {
                let key = self.u8()?;
                self.memo_get(key.into())?;
            }
            b'j' => {
                let key = u32::from_le_bytes(self.le()?);
                self.memo_get(key)?;
            }
            b'p' => {
                let line = self.line()?;
                let key = line.parse().map_err(|_| format!("PUT {line:?}"))?;
                self.memo_put(key)?;
            }
            b'q' => {
                let key = self.u8()?;
                self.memo_put(key.into())?;
            }
            b'r' => {
                let key = u32::from_le_bytes(self.le()?);
                self.memo_put(key)?;
            }
            0x94 => {
                let key = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memo_put(key)?;
            }
            b'i' | b'o' => {
                return Err(
                    "INST/OBJ opcodes (old-style object construction) in a checkpoint".into(),
                );
            }
            0x82..=0x84 => {
                return Err("extension-registry opcodes (EXT1/2/4) in a checkpoint".into());
            }
            0x97 | 0x98 => return Err("out-of-band buffers in a checkpoint".into()),
            b'S' | b'V' => {
                return Err(
                    "protocol-0 text strings in a checkpoint (torch.save writes binary ones)"
                        .into(),
                );
            }
            other => return Err(format!("unknown opcode 0x{other:02x}")),
        }
        Ok(false)
    }
}

fn int_tuple(v: &Value, what: &str) -> Result<Vec<u64>, String> {
    match v {
        Value::Tuple(t) => t
            .items
            .iter()
            .map(|i| match i {
                Value::Int(n) => u64::try_from(*n).map_err(|_| format!("a negative {what} {n}")),
                other => Err(format!("a {what} holding a {}", other.kind())),
            })
            .collect(),
        other => Err(format!("a {what} that is a {}, not a tuple", other.kind())),
    }
}

fn rebuild_tensor(args: &Value) -> Result<Value, String> {
    let Value::Tuple(t) = args else {
        return Err("a tensor rebuilt without an argument tuple".into());
    };
    let [storage, offset, size, stride, ..] = t.items.as_slice() else {
        return Err("a tensor rebuilt from fewer than four arguments".into());
    };
    let Value::Storage(storage) = storage else {
        return Err(format!("a tensor whose storage is a {}", storage.kind()));
    };
    let Value::Int(offset) = offset else {
        return Err("a tensor whose offset is not an integer".into());
    };
    let offset =
        u64::try_from(*offset).map_err(|_| format!("a negative tensor offset {offset}"))?;
    let shape = int_tuple(size, "size")?;
    let stride = int_tuple(stride, "stride")?;
    if shape.len() != stride.len() || shape.len() > 8 {
        return Err(format!(
            "a tensor of {} dimensions with {} strides",
            shape.len(),
            stride.len()
        ));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride,
    })))
}

/// Reads a pickle under `limits`; returns the value it leaves.
pub fn read(data: &[u8], limits: Limits) -> Result<Value, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        limits,
        work: 0,
    };
    loop {
        let at = m.pos;
        match m.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(detail) => return Err(PickleError { at, detail }),
        }
    }
    let at = m.pos;
    match (m.stack.pop(), m.stack.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(PickleError {
            at,
            detail: "the pickle does not end with exactly one value".into(),
        }),
    }
}

/// The named tensors of a state dict: the top-level dict, or its `model` entry (fastai's
/// `learn.save`). Entries that are not tensors (a `version` number) are skipped.
pub fn state_dict(top: &Value) -> Result<Vec<(String, Rc<TensorRef>)>, String> {
    let Value::Dict(p) = top else {
        return Err(format!("the checkpoint holds a {}, not a dict", top.kind()));
    };
    let tensors = |p: &Pairs| -> Vec<(String, Rc<TensorRef>)> {
        p.items
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => Some((k.to_string(), t.clone())),
                _ => None,
            })
            .collect()
    };
    let direct = tensors(p);
    if !direct.is_empty() {
        return Ok(direct);
    }
    let model = p.items.iter().find_map(|(k, v)| match (k, v) {
        (Value::Str(k), Value::Dict(m)) if &**k == "model" => Some(m),
        _ => None,
    });
    match model {
        Some(m) if !tensors(m).is_empty() => Ok(tensors(m)),
        _ => Err(
            "no tensors found (neither a state dict nor a dict with a 'model' state dict)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_default(data: &[u8]) -> Result<Value, PickleError> {
        read(data, Limits::default())
    }

    #[test]
    fn memo_bombs_are_refused_by_their_expanded_size() {
        // [x], then a list of the previous list twice, 64 times: 2^64 nodes if expanded.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for i in 0..64u8 {
            p.extend([b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
        }
        p.push(b'.');
        let err = read_default(&p).expect_err("refused");
        assert!(err.detail.contains("expands to more than"), "{err}");
        assert!(p.len() < 1400);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n([b']', b'('], 200_000).flatten());
        p.push(b'.');
        let err = read_default(&p).expect_err("refused");
        assert!(
            err.detail.contains("marks") || err.detail.contains("nested"),
            "{err}"
        );
        // Nesting by APPEND (no marks): each list appended into the one below it.
        let mut p = vec![0x80, 2, b']'];
        p.extend(std::iter::repeat_n(b']', 100));
        p.extend(std::iter::repeat_n(b'a', 100));
        p.push(b'.');
        let err = read_default(&p).expect_err("refused");
        assert!(err.detail.contains("nested deeper"), "{err}");
    }

    #[test]
    fn lengths_beyond_the_data_are_refused_before_allocating() {
        let p = [
            0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, b'.',
        ];
        let err = read_default(&p).expect_err("refused");
        assert!(err.detail.contains("remain in the pickle"), "{err}");
        let p = [0x80, 2, b'j', 9, 0, 0, 0, b'.'];
        assert!(
            read_default(&p)
                .expect_err("no memo")
                .detail
                .contains("never stored")
        );
        assert!(read_default(b"0.").is_err());
        assert!(read_default(&[0x80, 2]).is_err());
        assert!(read_default(b"NN.").is_err());
    }

    #[test]
    fn globals_outside_the_allow_list_are_refused_when_named() {
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00id\x85R.";
        let err = read_default(p).expect_err("refused");
        assert!(
            err.detail.contains("posix.system") && err.detail.contains("refused"),
            "{err}"
        );
        assert_eq!(err.at, 2);
    }

    #[test]
    fn a_small_state_dict_reads() {
        // {'w': _rebuild_tensor_v2(('storage', torch.FloatStorage, '0', 'cpu', 6), 0, (2, 3), (3, 1), False, {})}
        let mut p = b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89}tRs.".to_vec();
        let top = read_default(&p).expect("reads");
        let sd = state_dict(&top).expect("a state dict");
        assert_eq!(sd.len(), 1);
        assert_eq!(sd[0].0, "w");
        assert_eq!(sd[0].1.shape, vec![2, 3]);
        assert_eq!(sd[0].1.stride, vec![3, 1]);
        assert_eq!(sd[0].1.storage.numel, 6);
        assert_eq!(sd[0].1.storage.class, "FloatStorage");
        // As torch.save writes a module's state dict: an OrderedDict, its items, then `_metadata` by BUILD.
        let tensor = &p[11..112];
        let mut od = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w".to_vec();
        od.extend(tensor);
        od.extend(b"u}X\x09\x00\x00\x00_metadatah\x00)R(X\x00\x00\x00\x00}X\x07\x00\x00\x00versionK\x01susb.");
        let top = read_default(&od).expect("reads");
        let sd2 = state_dict(&top).expect("a state dict");
        assert_eq!(sd2, sd);
        // A storage key that tries to leave the archive's data folder.
        let at = p.windows(3).position(|w| w == b"\x000X").expect("key") + 1;
        p[at] = b'/';
        let err = read_default(&p).expect_err("refused");
        assert!(err.detail.contains("record name"), "{err}");
    }
}

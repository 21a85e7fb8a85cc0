//! Avro schema resolution compiled once per writer schema.
//!
//! A producer registered with a schema registry may write with a schema evolved from mora's (a field added with a
//! default, an optional field left out, union branches in another order). Rather than decode such records into
//! apache-avro's generic values, [`Transcoder::compile`] works out once, from the writer's and the reader's schema,
//! how each writer field maps to the reader's (Avro's resolution rules: fields by name, defaults for fields the
//! writer lacks, writer-only fields skipped, enum symbols and union branches by name, numeric promotions), and
//! [`Transcoder::transcode`] rewrites a writer body into the reader's binary layout in one pass. The result is read
//! by the same fast decoder as a record written with the current schema, so an evolved writer costs one extra pass
//! over its bytes and nothing more.
//!
//! A writer schema that cannot be resolved is refused at compile time with the path of the first field at fault
//! (`PaymentEvent.payload.PaymentReceived.amount: ...`), which is the reason its records are dead-lettered with.

use std::collections::HashMap;
use std::fmt;

use apache_avro::Schema;
use serde_json::Value as Json;

use crate::error::DecodeError;

/// Deepest nesting followed when compiling (our schemas nest a few levels; a recursive schema stops here).
const MAX_DEPTH: usize = 32;

/// Why a writer schema cannot be read with the reader's: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    /// Dotted path from the top record to the field at fault.
    pub path: String,
    /// What does not resolve.
    pub reason: String,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for ResolveError {}

/// A compiled writer-to-reader plan.
#[derive(Debug, Clone)]
pub struct Transcoder {
    root: Step,
    /// Whether the writer's layout is the reader's (the body can be used as it is).
    identity: bool,
}

/// Avro's primitive encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prim {
    Null,
    Boolean,
    /// `int` and `long` (and the logical types on them): one zigzag varint.
    Varint,
    Float,
    Double,
    /// `bytes` and `string`: a length, then that many bytes.
    Bytes,
    Fixed(usize),
}

#[derive(Debug, Clone)]
enum Step {
    /// The same encoding on both sides.
    Copy(Prim),
    /// A number widened to `float` (from `int`/`long`).
    ToFloat,
    /// A number widened to `double` (from `int`/`long` or `float`).
    ToDouble(Prim),
    Record(Box<RecordPlan>),
    /// Writer symbol index → reader symbol index, or the symbol the reader lacks.
    Enum(Vec<Result<i64, String>>),
    Array(Box<Step>),
    Map(Box<Step>),
    /// Writer union branch → reader branch and how to read it, or why it cannot be read.
    Union(Vec<Result<(i64, Step), String>>),
    /// A writer value that is not a union, read as branch `.0` of the reader's union.
    IntoUnion(i64, Box<Step>),
    /// A writer union read as a reader value that is not a union.
    FromUnion(Vec<Result<Step, String>>),
}

impl Step {
    /// Whether this step copies the writer's bytes unchanged (same layout on both sides).
    fn is_identity(&self) -> bool {
        match self {
            Step::Copy(_) => true,
            Step::ToFloat | Step::ToDouble(_) | Step::IntoUnion(..) | Step::FromUnion(_) => false,
            Step::Record(plan) => {
                plan.in_order
                    && plan.fields.len() == plan.defaults.len()
                    && plan
                        .fields
                        .iter()
                        .enumerate()
                        .all(|(i, f)| matches!(f, Field::Read(j, s) if *j == i && s.is_identity()))
            }
            Step::Enum(map) => map.iter().enumerate().all(|(i, m)| m == &Ok(i as i64)),
            Step::Array(s) | Step::Map(s) => s.is_identity(),
            Step::Union(branches) => branches
                .iter()
                .enumerate()
                .all(|(i, b)| matches!(b, Ok((j, s)) if *j == i as i64 && s.is_identity())),
        }
    }
}

#[derive(Debug, Clone)]
struct RecordPlan {
    /// For each writer field in order: the reader field it fills and how, or how to skip it.
    fields: Vec<Field>,
    /// Reader fields' default values, encoded (only for fields the writer lacks).
    defaults: Vec<Option<Vec<u8>>>,
    /// The writer's fields that the reader keeps come in the reader's order (the body streams through).
    in_order: bool,
}

#[derive(Debug, Clone)]
enum Field {
    Read(usize, Step),
    Skip(Skip),
}

/// How to step over a writer-only value.
#[derive(Debug, Clone)]
enum Skip {
    Prim(Prim),
    Record(Vec<Skip>),
    Array(Box<Skip>),
    Map(Box<Skip>),
    Union(Vec<Skip>),
}

/// Named types of a schema by full name, to follow references.
struct Names<'a>(HashMap<String, &'a Schema>);

impl<'a> Names<'a> {
    fn of(schema: &'a Schema) -> Self {
        let mut names = Names(HashMap::new());
        names.collect(schema);
        names
    }

    fn collect(&mut self, s: &'a Schema) {
        match s {
            Schema::Record(r) => {
                self.0.insert(r.name.fullname(None), s);
                for f in &r.fields {
                    self.collect(&f.schema);
                }
            }
            Schema::Enum(e) => {
                self.0.insert(e.name.fullname(None), s);
            }
            Schema::Fixed(f) => {
                self.0.insert(f.name.fullname(None), s);
            }
            Schema::Array(a) => self.collect(&a.items),
            Schema::Map(m) => self.collect(&m.types),
            Schema::Union(u) => u.variants().iter().for_each(|v| self.collect(v)),
            Schema::Decimal(d) => self.collect(&d.inner),
            _ => {}
        }
    }

    fn deref(&self, s: &'a Schema, path: &str) -> Result<&'a Schema, ResolveError> {
        match s {
            Schema::Ref { name } => {
                self.0
                    .get(&name.fullname(None))
                    .copied()
                    .ok_or_else(|| ResolveError {
                        path: path.to_string(),
                        reason: format!("unknown type `{}`", name.fullname(None)),
                    })
            }
            _ => Ok(s),
        }
    }
}

/// Why a writer's union branch has no reader branch.
enum Branch {
    /// The reader has a branch of that name, and it does not resolve: the schema is refused.
    Broken(ResolveError),
    /// No reader branch matches (a type mora does not know): records using it are refused one by one.
    Unknown(String),
}

struct Compiler<'w, 'r> {
    writer: Names<'w>,
    reader: Names<'r>,
}

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T, ResolveError> {
    Err(ResolveError {
        path: path.to_string(),
        reason: reason.into(),
    })
}

/// The encoding and logical type of a non-named, non-container schema; `None` for the others.
fn prim(s: &Schema) -> Option<(Prim, &'static str)> {
    Some(match s {
        Schema::Null => (Prim::Null, "null"),
        Schema::Boolean => (Prim::Boolean, "boolean"),
        Schema::Int => (Prim::Varint, "int"),
        Schema::Long => (Prim::Varint, "long"),
        Schema::Float => (Prim::Float, "float"),
        Schema::Double => (Prim::Double, "double"),
        Schema::Bytes => (Prim::Bytes, "bytes"),
        Schema::String => (Prim::Bytes, "string"),
        Schema::Uuid => (Prim::Bytes, "uuid"),
        Schema::BigDecimal => (Prim::Bytes, "big-decimal"),
        Schema::Date => (Prim::Varint, "date"),
        Schema::TimeMillis => (Prim::Varint, "time-millis"),
        Schema::TimeMicros => (Prim::Varint, "time-micros"),
        Schema::TimestampMillis => (Prim::Varint, "timestamp-millis"),
        Schema::TimestampMicros => (Prim::Varint, "timestamp-micros"),
        Schema::TimestampNanos => (Prim::Varint, "timestamp-nanos"),
        Schema::LocalTimestampMillis => (Prim::Varint, "local-timestamp-millis"),
        Schema::LocalTimestampMicros => (Prim::Varint, "local-timestamp-micros"),
        Schema::LocalTimestampNanos => (Prim::Varint, "local-timestamp-nanos"),
        Schema::Duration => (Prim::Fixed(12), "duration"),
        _ => return None,
    })
}

/// A short name of a schema's type for messages.
fn type_name(s: &Schema) -> String {
    if let Some((_, n)) = prim(s) {
        return n.to_string();
    }
    match s {
        Schema::Record(r) => format!("record {}", r.name.name),
        Schema::Enum(e) => format!("enum {}", e.name.name),
        Schema::Fixed(f) => format!("fixed {}", f.name.name),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        Schema::Ref { name } => name.name.clone(),
        _ => "?".into(),
    }
}

impl<'w, 'r> Compiler<'w, 'r> {
    fn step(
        &self,
        w: &'w Schema,
        r: &'r Schema,
        path: &str,
        depth: usize,
    ) -> Result<Step, ResolveError> {
        if depth > MAX_DEPTH {
            return err(
                path,
                "schema nests too deeply (recursive types are not supported)",
            );
        }
        let w = self.writer.deref(w, path)?;
        let r = self.reader.deref(r, path)?;
        match (w, r) {
            (Schema::Union(wu), Schema::Union(ru)) => {
                let mut branches = Vec::with_capacity(wu.variants().len());
                for wb in wu.variants() {
                    match self.branch(wb, ru.variants(), path, depth) {
                        Ok((i, s)) => branches.push(Ok((i as i64, s))),
                        // A branch the reader knows by name but cannot read is a broken schema, refused whole; a
                        // branch the reader does not know (a new event type) fails only the records that use it.
                        Err(Branch::Broken(e)) => return Err(e),
                        Err(Branch::Unknown(reason)) => branches.push(Err(reason)),
                    }
                }
                Ok(Step::Union(branches))
            }
            (Schema::Union(wu), _) => {
                let branches: Vec<Result<Step, String>> = wu
                    .variants()
                    .iter()
                    .map(|wb| self.step(wb, r, path, depth + 1).map_err(|e| e.to_string()))
                    .collect();
                if branches.iter().all(Result::is_err) {
                    return err(
                        path,
                        format!(
                            "no branch of the writer's union can be read as {}",
                            type_name(r)
                        ),
                    );
                }
                Ok(Step::FromUnion(branches))
            }
            (_, Schema::Union(ru)) => match self.branch(w, ru.variants(), path, depth) {
                Ok((i, s)) => Ok(Step::IntoUnion(i as i64, Box::new(s))),
                Err(Branch::Broken(e)) => Err(e),
                Err(Branch::Unknown(reason)) => err(path, reason),
            },
            (Schema::Record(wr), Schema::Record(rr)) => {
                if wr.name.name != rr.name.name
                    && !rr
                        .aliases
                        .iter()
                        .flatten()
                        .any(|a| a.name() == wr.name.name)
                {
                    return err(
                        path,
                        format!(
                            "the writer's record {} is not the reader's record {}",
                            wr.name.name, rr.name.name
                        ),
                    );
                }
                self.record(wr, rr, path, depth)
            }
            (Schema::Enum(we), Schema::Enum(re)) => {
                if we.name.name != re.name.name {
                    return err(
                        path,
                        format!(
                            "the writer's enum {} is not the reader's enum {}",
                            we.name.name, re.name.name
                        ),
                    );
                }
                let fallback = re
                    .default
                    .as_ref()
                    .and_then(|d| re.symbols.iter().position(|s| s == d));
                Ok(Step::Enum(
                    we.symbols
                        .iter()
                        .map(|s| {
                            re.symbols
                                .iter()
                                .position(|x| x == s)
                                .or(fallback)
                                .map(|i| i as i64)
                                .ok_or_else(|| {
                                    format!(
                                        "{path}: symbol {s} is not in the reader's enum {}",
                                        re.name.name
                                    )
                                })
                        })
                        .collect(),
                ))
            }
            (Schema::Fixed(wf), Schema::Fixed(rf)) => {
                if wf.name.name != rf.name.name || wf.size != rf.size {
                    return err(
                        path,
                        format!(
                            "fixed {}[{}] cannot be read as fixed {}[{}]",
                            wf.name.name, wf.size, rf.name.name, rf.size
                        ),
                    );
                }
                Ok(Step::Copy(Prim::Fixed(wf.size)))
            }
            (Schema::Array(wa), Schema::Array(ra)) => Ok(Step::Array(Box::new(self.step(
                &wa.items,
                &ra.items,
                &format!("{path}[]"),
                depth + 1,
            )?))),
            (Schema::Map(wm), Schema::Map(rm)) => Ok(Step::Map(Box::new(self.step(
                &wm.types,
                &rm.types,
                &format!("{path}{{}}"),
                depth + 1,
            )?))),
            (Schema::Decimal(wd), Schema::Decimal(rd)) => {
                if wd.scale != rd.scale || rd.precision < wd.precision {
                    return err(
                        path,
                        format!(
                            "decimal({}, {}) cannot be read as decimal({}, {}) (the scale must match and the \
                             precision must not shrink)",
                            wd.precision, wd.scale, rd.precision, rd.scale
                        ),
                    );
                }
                self.step(&wd.inner, &rd.inner, path, depth + 1)
            }
            _ => self.primitive(w, r, path),
        }
    }

    fn primitive(&self, w: &Schema, r: &Schema, path: &str) -> Result<Step, ResolveError> {
        let (Some((wp, wn)), Some((_, rn))) = (prim(w), prim(r)) else {
            return err(
                path,
                format!(
                    "the writer's {} cannot be read as {}",
                    type_name(w),
                    type_name(r)
                ),
            );
        };
        let step = match (w, r) {
            _ if wn == rn => Step::Copy(wp),
            // Avro's promotions: int → long; int, long → float, double; float → double; string ↔ bytes.
            (Schema::Int, Schema::Long) => Step::Copy(Prim::Varint),
            (Schema::Int | Schema::Long, Schema::Float) => Step::ToFloat,
            (Schema::Int | Schema::Long | Schema::Float, Schema::Double) => Step::ToDouble(wp),
            (Schema::String, Schema::Bytes) | (Schema::Bytes, Schema::String) => {
                Step::Copy(Prim::Bytes)
            }
            _ => {
                return err(path, format!("the writer's {wn} cannot be read as {rn}"));
            }
        };
        Ok(step)
    }

    /// The first reader branch the writer's schema resolves against: same type or name first, then by promotion.
    fn branch(
        &self,
        w: &'w Schema,
        branches: &'r [Schema],
        path: &str,
        depth: usize,
    ) -> Result<(usize, Step), Branch> {
        let w = self.writer.deref(w, path).map_err(Branch::Broken)?;
        let same = |r: &Schema| -> bool {
            let Ok(r) = self.reader.deref(r, path) else {
                return false;
            };
            match (w, r) {
                (Schema::Record(a), Schema::Record(b)) => a.name.name == b.name.name,
                (Schema::Enum(a), Schema::Enum(b)) => a.name.name == b.name.name,
                (Schema::Fixed(a), Schema::Fixed(b)) => a.name.name == b.name.name,
                (Schema::Array(_), Schema::Array(_)) | (Schema::Map(_), Schema::Map(_)) => true,
                (Schema::Decimal(_), Schema::Decimal(_)) => true,
                _ => matches!((prim(w), prim(r)), (Some((_, a)), Some((_, b))) if a == b),
            }
        };
        let sub = |r| {
            let label = match w {
                Schema::Record(rec) => format!("{path}.{}", rec.name.name),
                _ => path.to_string(),
            };
            self.step(w, r, &label, depth + 1)
        };
        if let Some(i) = branches.iter().position(same) {
            return sub(&branches[i]).map(|s| (i, s)).map_err(Branch::Broken);
        }
        for (i, r) in branches.iter().enumerate() {
            if let Ok(s) = sub(r) {
                return Ok((i, s));
            }
        }
        Err(Branch::Unknown(format!(
            "{path}: the writer's {} matches no branch of the reader's union",
            type_name(w)
        )))
    }

    fn record(
        &self,
        w: &'w apache_avro::schema::RecordSchema,
        r: &'r apache_avro::schema::RecordSchema,
        path: &str,
        depth: usize,
    ) -> Result<Step, ResolveError> {
        let reader_index = |name: &str| {
            r.fields
                .iter()
                .position(|f| f.name == name || f.aliases.iter().flatten().any(|a| a == name))
        };
        let mut fields = Vec::with_capacity(w.fields.len());
        let mut seen = vec![false; r.fields.len()];
        let mut last = None;
        let mut in_order = true;
        for wf in &w.fields {
            let fpath = format!("{path}.{}", wf.name);
            match reader_index(&wf.name) {
                Some(j) => {
                    let step = self.step(&wf.schema, &r.fields[j].schema, &fpath, depth + 1)?;
                    in_order &= last.is_none_or(|l| l < j);
                    last = Some(j);
                    seen[j] = true;
                    fields.push(Field::Read(j, step));
                }
                None => fields.push(Field::Skip(self.skip(&wf.schema, &fpath, depth + 1)?)),
            }
        }
        let mut defaults = Vec::with_capacity(r.fields.len());
        for (j, rf) in r.fields.iter().enumerate() {
            if seen[j] {
                defaults.push(None);
                continue;
            }
            let fpath = format!("{path}.{}", rf.name);
            let Some(default) = &rf.default else {
                return err(
                    &fpath,
                    "the writer has no such field and the reader's has no default",
                );
            };
            let mut out = Vec::new();
            encode_default(&self.reader, &rf.schema, default, &fpath, &mut out, 0)?;
            defaults.push(Some(out));
        }
        Ok(Step::Record(Box::new(RecordPlan {
            fields,
            defaults,
            in_order,
        })))
    }

    fn skip(&self, w: &'w Schema, path: &str, depth: usize) -> Result<Skip, ResolveError> {
        if depth > MAX_DEPTH {
            return err(
                path,
                "schema nests too deeply (recursive types are not supported)",
            );
        }
        let w = self.writer.deref(w, path)?;
        Ok(match w {
            Schema::Record(r) => Skip::Record(
                r.fields
                    .iter()
                    .map(|f| self.skip(&f.schema, path, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Enum(_) => Skip::Prim(Prim::Varint),
            Schema::Fixed(f) => Skip::Prim(Prim::Fixed(f.size)),
            Schema::Array(a) => Skip::Array(Box::new(self.skip(&a.items, path, depth + 1)?)),
            Schema::Map(m) => Skip::Map(Box::new(self.skip(&m.types, path, depth + 1)?)),
            Schema::Union(u) => Skip::Union(
                u.variants()
                    .iter()
                    .map(|v| self.skip(v, path, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Decimal(d) => self.skip(&d.inner, path, depth + 1)?,
            other => match prim(other) {
                Some((p, _)) => Skip::Prim(p),
                None => return err(path, format!("cannot skip a {}", type_name(other))),
            },
        })
    }
}

/// Encodes a field's JSON default with its schema (a union's default is of its first branch).
fn encode_default(
    names: &Names<'_>,
    s: &Schema,
    v: &Json,
    path: &str,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), ResolveError> {
    let bad = || {
        err(
            path,
            format!("default {v} does not fit the field's type {}", type_name(s)),
        )
    };
    if depth > MAX_DEPTH {
        return err(path, "default nests too deeply");
    }
    let s = names.deref(s, path)?;
    match s {
        Schema::Union(u) => {
            let Some(first) = u.variants().first() else {
                return bad();
            };
            put_long(out, 0);
            encode_default(names, first, v, path, out, depth + 1)
        }
        Schema::Record(r) => {
            let Json::Object(obj) = v else { return bad() };
            for f in &r.fields {
                let fv = obj
                    .get(&f.name)
                    .or(f.default.as_ref())
                    .ok_or_else(|| ResolveError {
                        path: format!("{path}.{}", f.name),
                        reason: "missing from the default".into(),
                    })?;
                encode_default(names, &f.schema, fv, path, out, depth + 1)?;
            }
            Ok(())
        }
        Schema::Enum(e) => match v
            .as_str()
            .and_then(|x| e.symbols.iter().position(|s| s == x))
        {
            Some(i) => {
                put_long(out, i as i64);
                Ok(())
            }
            None => bad(),
        },
        Schema::Array(a) => {
            let Json::Array(items) = v else { return bad() };
            if !items.is_empty() {
                put_long(out, items.len() as i64);
                for item in items {
                    encode_default(names, &a.items, item, path, out, depth + 1)?;
                }
            }
            put_long(out, 0);
            Ok(())
        }
        Schema::Map(m) => {
            let Json::Object(obj) = v else { return bad() };
            if !obj.is_empty() {
                put_long(out, obj.len() as i64);
                for (k, item) in obj {
                    put_bytes(out, k.as_bytes());
                    encode_default(names, &m.types, item, path, out, depth + 1)?;
                }
            }
            put_long(out, 0);
            Ok(())
        }
        Schema::Decimal(d) => encode_default(names, &d.inner, v, path, out, depth + 1),
        Schema::Fixed(f) => match v.as_str().map(latin1) {
            Some(Some(b)) if b.len() == f.size => {
                out.extend_from_slice(&b);
                Ok(())
            }
            _ => bad(),
        },
        other => match (prim(other), v) {
            (Some((Prim::Null, _)), Json::Null) => Ok(()),
            (Some((Prim::Boolean, _)), Json::Bool(b)) => {
                out.push(u8::from(*b));
                Ok(())
            }
            (Some((Prim::Varint, _)), Json::Number(n)) => match n.as_i64() {
                Some(i) => {
                    put_long(out, i);
                    Ok(())
                }
                None => bad(),
            },
            (Some((Prim::Float, _)), Json::Number(n)) => match n.as_f64() {
                Some(x) => {
                    out.extend_from_slice(&(x as f32).to_le_bytes());
                    Ok(())
                }
                None => bad(),
            },
            (Some((Prim::Double, _)), Json::Number(n)) => match n.as_f64() {
                Some(x) => {
                    out.extend_from_slice(&x.to_le_bytes());
                    Ok(())
                }
                None => bad(),
            },
            (Some((Prim::Bytes, "string" | "uuid")), Json::String(x)) => {
                put_bytes(out, x.as_bytes());
                Ok(())
            }
            (Some((Prim::Bytes, _)), Json::String(x)) => match latin1(x) {
                Some(b) => {
                    put_bytes(out, &b);
                    Ok(())
                }
                None => bad(),
            },
            _ => bad(),
        },
    }
}

/// Avro's JSON form of bytes: one code point 0-255 per byte.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// A cursor over a writer's body.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn truncated() -> DecodeError {
    DecodeError::Malformed("record truncated".into())
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// A zigzag varint: its value and its bytes.
    fn long(&mut self) -> Result<(i64, &'a [u8]), DecodeError> {
        let start = self.pos;
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = *self.bytes.get(self.pos).ok_or_else(truncated)?;
            self.pos += 1;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
                return Ok((v, &self.bytes[start..self.pos]));
            }
        }
        Err(DecodeError::Malformed("integer overflow".into()))
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let (n, _) = self.long()?;
        usize::try_from(n).map_err(|_| DecodeError::Malformed("negative length".into()))
    }

    /// The encoded bytes of one primitive value.
    fn prim(&mut self, p: Prim) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        match p {
            Prim::Null => {}
            Prim::Boolean => match self.take(1)? {
                [0 | 1] => {}
                [b] => return Err(DecodeError::Malformed(format!("invalid boolean {b}"))),
                _ => return Err(truncated()),
            },
            Prim::Varint => {
                self.long()?;
            }
            Prim::Float => {
                self.take(4)?;
            }
            Prim::Double => {
                self.take(8)?;
            }
            Prim::Bytes => {
                let n = self.length()?;
                self.take(n)?;
            }
            Prim::Fixed(n) => {
                self.take(n)?;
            }
        }
        Ok(&self.bytes[start..self.pos])
    }

    /// A block's item count (a negative count is followed by the block's size in bytes).
    fn block(&mut self) -> Result<usize, DecodeError> {
        let (count, _) = self.long()?;
        let count = if count < 0 {
            self.long()?;
            count
                .checked_neg()
                .ok_or_else(|| DecodeError::Malformed("block count".into()))?
        } else {
            count
        };
        let count =
            usize::try_from(count).map_err(|_| DecodeError::Malformed("block count".into()))?;
        // Every item takes at least one byte, except nulls, which nobody puts in an array of thousands.
        if count > self.bytes.len() - self.pos && count > 1 << 16 {
            return Err(truncated());
        }
        Ok(count)
    }
}

impl Transcoder {
    /// Compiles the plan that reads bodies written with `writer` as `reader` would.
    pub fn compile(writer: &Schema, reader: &Schema) -> Result<Self, ResolveError> {
        let c = Compiler {
            writer: Names::of(writer),
            reader: Names::of(reader),
        };
        let top = match reader {
            Schema::Record(r) => r.name.name.clone(),
            other => type_name(other),
        };
        let root = c.step(writer, reader, &top, 0)?;
        Ok(Self {
            identity: root.is_identity(),
            root,
        })
    }

    /// Whether the writer's layout is the reader's, so a body needs no rewriting.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Rewrites `body` (written with the writer schema) into `out` in the reader's layout. Bytes left after the
    /// record are refused as the decoders refuse them.
    pub fn transcode(&self, body: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut c = Cursor {
            bytes: body,
            pos: 0,
        };
        run(&self.root, &mut c, out)?;
        match body.len() - c.pos {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

fn run(step: &Step, c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    match step {
        Step::Copy(p) => out.extend_from_slice(c.prim(*p)?),
        Step::ToFloat => {
            let (v, _) = c.long()?;
            out.extend_from_slice(&(v as f32).to_le_bytes());
        }
        Step::ToDouble(p) => {
            let v = match p {
                Prim::Float => {
                    let b = c.take(4)?;
                    f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                _ => c.long()?.0 as f64,
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
        Step::Record(plan) => record(plan, c, out)?,
        Step::Enum(map) => {
            let (i, _) = c.long()?;
            match usize::try_from(i).ok().and_then(|i| map.get(i)) {
                Some(Ok(j)) => put_long(out, *j),
                Some(Err(reason)) => return Err(DecodeError::Malformed(reason.clone())),
                None => {
                    return Err(DecodeError::Malformed(format!(
                        "enum index {i} out of range"
                    )));
                }
            }
        }
        Step::Array(item) => blocks(c, out, |c, out| run(item, c, out))?,
        Step::Map(value) => blocks(c, out, |c, out| {
            out.extend_from_slice(c.prim(Prim::Bytes)?);
            run(value, c, out)
        })?,
        Step::Union(branches) => {
            let (i, _) = c.long()?;
            match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
                Some(Ok((j, s))) => {
                    put_long(out, *j);
                    run(s, c, out)?;
                }
                Some(Err(reason)) => return Err(DecodeError::Malformed(reason.clone())),
                None => {
                    return Err(DecodeError::Malformed(format!(
                        "union index {i} out of range"
                    )));
                }
            }
        }
        Step::IntoUnion(j, s) => {
            put_long(out, *j);
            run(s, c, out)?;
        }
        Step::FromUnion(branches) => {
            let (i, _) = c.long()?;
            match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
                Some(Ok(s)) => run(s, c, out)?,
                Some(Err(reason)) => return Err(DecodeError::Malformed(reason.clone())),
                None => {
                    return Err(DecodeError::Malformed(format!(
                        "union index {i} out of range"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Array and map items, block by block, written back as one block.
fn blocks(
    c: &mut Cursor<'_>,
    out: &mut Vec<u8>,
    mut item: impl FnMut(&mut Cursor<'_>, &mut Vec<u8>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    loop {
        let n = c.block()?;
        if n == 0 {
            put_long(out, 0);
            return Ok(());
        }
        put_long(out, n as i64);
        for _ in 0..n {
            item(c, out)?;
        }
    }
}

fn record(plan: &RecordPlan, c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let defaults = |from: usize, to: usize, out: &mut Vec<u8>| {
        for d in plan.defaults[from..to].iter().flatten() {
            out.extend_from_slice(d);
        }
    };
    if plan.in_order {
        let mut next = 0;
        for f in &plan.fields {
            match f {
                Field::Read(j, step) => {
                    defaults(next, *j, out);
                    run(step, c, out)?;
                    next = j + 1;
                }
                Field::Skip(s) => skip(s, c)?,
            }
        }
        defaults(next, plan.defaults.len(), out);
        return Ok(());
    }
    // The writer's fields in another order: each read into its own buffer, then laid out in the reader's order.
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; plan.defaults.len()];
    for f in &plan.fields {
        match f {
            Field::Read(j, step) => {
                let mut part = Vec::new();
                run(step, c, &mut part)?;
                parts[*j] = Some(part);
            }
            Field::Skip(s) => skip(s, c)?,
        }
    }
    for (part, default) in parts.iter().zip(&plan.defaults) {
        if let Some(b) = part.as_ref().or(default.as_ref()) {
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

fn skip(s: &Skip, c: &mut Cursor<'_>) -> Result<(), DecodeError> {
    match s {
        Skip::Prim(p) => {
            c.prim(*p)?;
        }
        Skip::Record(fields) => fields.iter().try_for_each(|f| skip(f, c))?,
        Skip::Array(item) => loop {
            let n = c.block()?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                skip(item, c)?;
            }
        },
        Skip::Map(value) => loop {
            let n = c.block()?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                c.prim(Prim::Bytes)?;
                skip(value, c)?;
            }
        },
        Skip::Union(branches) => {
            let (i, _) = c.long()?;
            let b = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| DecodeError::Malformed(format!("union index {i} out of range")))?;
            skip(b, c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Framing and the small typed accessors that turn Avro values into domain values and back.

use std::io::Read;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::NaiveDate;
use compact_str::CompactString;
use mora_domain::ids::{Channel, Currency};
use mora_domain::time::Ts;
use rust_decimal::Decimal;

use crate::error::{DecodeError, EncodeError};
use crate::registry::{Registry, SchemaKind, Wire};

/// Scale of every money field (`decimal(28, 4)` in the schemas).
pub(crate) const MONEY_SCALE: u32 = 4;

/// A decoded record and the schema it was written with.
pub(crate) struct Decoded<'a> {
    pub value: Value,
    pub writer: &'a Schema,
}

/// Marks the end of the body: apache-avro reads an end of input where a union index is due as `null` (so that a
/// truncated record would decode), so the decoder never sees the end. A real body never leaves the sentinel unread,
/// and `0x7f` read as a union index is out of range.
const SENTINEL: [u8; 1] = [0x7f];

struct Counting<R> {
    inner: R,
    read: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

/// Decodes a payload of `kind`: Confluent-framed (read with its writer schema) or raw (current schema).
///
/// A raw payload never starts with byte 0, because every record begins with a non-empty string (a zero first byte
/// would be an empty string's length), so the magic byte is unambiguous. Values keep the writer's shape; the typed
/// mappers resolve fields and union branches by name, filling the defaults of fields added since (Avro's rules).
pub(crate) fn decode(kind: SchemaKind, bytes: &[u8]) -> Result<Decoded<'static>, DecodeError> {
    let reg = Registry::global();
    let (writer, body) = match bytes {
        [] => return Err(DecodeError::Empty),
        [0, rest @ ..] => {
            let Some((id, body)) = rest.split_first_chunk::<4>() else {
                return Err(DecodeError::TruncatedHeader(bytes.len()));
            };
            let id = u32::from_be_bytes(*id);
            let (found, schema) = reg.by_id(id).ok_or(DecodeError::UnknownSchemaId(id))?;
            if found != kind {
                return Err(DecodeError::WrongSchema {
                    id,
                    found: found.name(),
                    expected: kind.name(),
                });
            }
            (schema, body)
        }
        body => (reg.current(kind).1, body),
    };
    let mut reader = Counting {
        inner: body.chain(&SENTINEL[..]),
        read: 0,
    };
    let value = apache_avro::from_avro_datum(writer, &mut reader, None)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match (body.len() + 1).checked_sub(reader.read) {
        Some(1) => Ok(Decoded { value, writer }),
        Some(0) | None => Err(DecodeError::Malformed("record truncated".into())),
        Some(left) => Err(DecodeError::TrailingBytes(left - 1)),
    }
}

/// The name of branch `index` of the union in field `field` of record schema `schema`.
pub(crate) fn union_branch_name<'s>(
    schema: &'s Schema,
    field: &str,
    index: u32,
) -> Option<&'s str> {
    let Schema::Record(rec) = schema else {
        return None;
    };
    let f = rec.fields.iter().find(|f| f.name == field)?;
    let Schema::Union(u) = &f.schema else {
        return None;
    };
    match u.variants().get(index as usize)? {
        Schema::Record(r) => Some(r.name.name.as_str()),
        _ => None,
    }
}

/// Encodes `value` with the current schema of `kind`.
pub(crate) fn encode(kind: SchemaKind, value: Value, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let (id, schema) = Registry::global().current(kind);
    let body =
        apache_avro::to_avro_datum(schema, value).map_err(|e| EncodeError::Avro(e.to_string()))?;
    Ok(match wire {
        Wire::Raw => body,
        Wire::Confluent => {
            let mut out = Vec::with_capacity(body.len() + 5);
            out.push(0);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&body);
            out
        }
    })
}

/// A record's fields, taken out by name.
pub(crate) struct Fields(Vec<(String, Value)>);

impl Fields {
    pub(crate) fn of(v: Value, name: &'static str) -> Result<Self, DecodeError> {
        match v {
            Value::Record(f) => Ok(Self(f)),
            _ => Err(DecodeError::Field(name)),
        }
    }

    pub(crate) fn take(&mut self, name: &'static str) -> Result<Value, DecodeError> {
        self.0
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| std::mem::replace(v, Value::Null))
            .ok_or(DecodeError::Field(name))
    }

    /// An optional (`["null", T]`, default null) field: `None` for null, or when the writer's schema version
    /// predates the field.
    pub(crate) fn opt(&mut self, name: &'static str) -> Result<Option<Value>, DecodeError> {
        let Some(v) = self
            .0
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| std::mem::replace(v, Value::Null))
        else {
            return Ok(None);
        };
        match v {
            Value::Union(_, v) => match *v {
                Value::Null => Ok(None),
                v => Ok(Some(v)),
            },
            Value::Null => Ok(None),
            v => Ok(Some(v)),
        }
    }

    pub(crate) fn string(&mut self, name: &'static str) -> Result<CompactString, DecodeError> {
        as_string(self.take(name)?, name)
    }

    pub(crate) fn id(&mut self, name: &'static str) -> Result<CompactString, DecodeError> {
        let s = self.string(name)?;
        if s.is_empty() {
            return Err(DecodeError::Invalid {
                field: name,
                reason: "must not be empty".into(),
            });
        }
        Ok(s)
    }

    pub(crate) fn opt_string(
        &mut self,
        name: &'static str,
    ) -> Result<Option<CompactString>, DecodeError> {
        self.opt(name)?.map(|v| as_string(v, name)).transpose()
    }

    pub(crate) fn long(&mut self, name: &'static str) -> Result<i64, DecodeError> {
        match self.take(name)? {
            Value::Long(v) => Ok(v),
            Value::Int(v) => Ok(v.into()),
            _ => Err(DecodeError::Field(name)),
        }
    }

    pub(crate) fn int(&mut self, name: &'static str) -> Result<i32, DecodeError> {
        match self.take(name)? {
            Value::Int(v) => Ok(v),
            _ => Err(DecodeError::Field(name)),
        }
    }

    /// A boolean with a declared default, used when the writer's schema version predates the field.
    pub(crate) fn bool_or(
        &mut self,
        name: &'static str,
        default: bool,
    ) -> Result<bool, DecodeError> {
        match self.opt(name)? {
            None => Ok(default),
            Some(Value::Boolean(v)) => Ok(v),
            Some(_) => Err(DecodeError::Field(name)),
        }
    }

    pub(crate) fn bool(&mut self, name: &'static str) -> Result<bool, DecodeError> {
        match self.take(name)? {
            Value::Boolean(v) => Ok(v),
            _ => Err(DecodeError::Field(name)),
        }
    }

    pub(crate) fn money(&mut self, name: &'static str) -> Result<Decimal, DecodeError> {
        as_money(self.take(name)?, name)
    }

    pub(crate) fn opt_money(&mut self, name: &'static str) -> Result<Option<Decimal>, DecodeError> {
        self.opt(name)?.map(|v| as_money(v, name)).transpose()
    }

    pub(crate) fn date(&mut self, name: &'static str) -> Result<NaiveDate, DecodeError> {
        as_date(self.take(name)?, name)
    }

    pub(crate) fn opt_date(
        &mut self,
        name: &'static str,
    ) -> Result<Option<NaiveDate>, DecodeError> {
        self.opt(name)?.map(|v| as_date(v, name)).transpose()
    }

    pub(crate) fn ts(&mut self, name: &'static str) -> Result<Ts, DecodeError> {
        as_ts(self.take(name)?, name)
    }

    pub(crate) fn opt_ts(&mut self, name: &'static str) -> Result<Option<Ts>, DecodeError> {
        self.opt(name)?.map(|v| as_ts(v, name)).transpose()
    }

    pub(crate) fn symbol(&mut self, name: &'static str) -> Result<String, DecodeError> {
        as_symbol(self.take(name)?, name)
    }

    pub(crate) fn currency(&mut self, name: &'static str) -> Result<Currency, DecodeError> {
        currency_of(&self.string(name)?, name)
    }

    pub(crate) fn channel(&mut self, name: &'static str) -> Result<Channel, DecodeError> {
        as_channel(self.take(name)?, name)
    }

    pub(crate) fn opt_channel(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Channel>, DecodeError> {
        self.opt(name)?.map(|v| as_channel(v, name)).transpose()
    }
}

pub(crate) fn as_string(v: Value, name: &'static str) -> Result<CompactString, DecodeError> {
    match v {
        Value::String(s) => Ok(s.into()),
        _ => Err(DecodeError::Field(name)),
    }
}

pub(crate) fn as_symbol(v: Value, name: &'static str) -> Result<String, DecodeError> {
    match v {
        Value::Enum(_, s) => Ok(s),
        _ => Err(DecodeError::Field(name)),
    }
}

pub(crate) fn as_channel(v: Value, name: &'static str) -> Result<Channel, DecodeError> {
    channel_of(&as_symbol(v, name)?, name)
}

/// A `Channel` enum symbol as the domain's channel.
pub(crate) fn channel_of(symbol: &str, name: &'static str) -> Result<Channel, DecodeError> {
    Channel::parse(&symbol.to_ascii_lowercase()).ok_or_else(|| DecodeError::Invalid {
        field: name,
        reason: format!("unknown channel {symbol}"),
    })
}

/// An `Outcome` enum symbol as the domain's contact outcome.
pub(crate) fn outcome_of(symbol: &str) -> Result<mora_domain::event::Outcome, DecodeError> {
    let sym = symbol.to_ascii_lowercase();
    mora_domain::event::Outcome::ALL
        .into_iter()
        .find(|o| o.as_str() == sym)
        .ok_or_else(|| DecodeError::Invalid {
            field: "outcome",
            reason: format!("unknown symbol {sym}"),
        })
}

/// A risk score, 0 to 1 000.
pub(crate) fn risk_score_of(risk: i32) -> Result<u16, DecodeError> {
    u16::try_from(risk)
        .ok()
        .filter(|r| *r <= 1000)
        .ok_or_else(|| DecodeError::Invalid {
            field: "risk_score",
            reason: format!("{risk} is outside 0..=1000"),
        })
}

/// An IANA time zone name.
pub(crate) fn time_zone_of<Tz: std::str::FromStr>(name: &str) -> Result<Tz, DecodeError> {
    name.parse().map_err(|_| DecodeError::Invalid {
        field: "time_zone",
        reason: format!("`{name}` is not an IANA zone"),
    })
}

/// A currency code.
pub(crate) fn currency_of(s: &str, name: &'static str) -> Result<Currency, DecodeError> {
    Currency::parse(s).ok_or_else(|| DecodeError::Invalid {
        field: name,
        reason: format!("`{s}` is not an ISO 4217 code"),
    })
}

pub(crate) fn as_date(v: Value, name: &'static str) -> Result<NaiveDate, DecodeError> {
    match v {
        Value::Date(days) => date_of(days, name),
        _ => Err(DecodeError::Field(name)),
    }
}

/// A date from its days since the epoch.
pub(crate) fn date_of(days: i32, name: &'static str) -> Result<NaiveDate, DecodeError> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|e| e.checked_add_signed(chrono::Duration::days(days.into())))
        .ok_or_else(|| DecodeError::Invalid {
            field: name,
            reason: format!("date {days} out of range"),
        })
}

pub(crate) fn as_ts(v: Value, name: &'static str) -> Result<Ts, DecodeError> {
    match v {
        Value::TimestampMillis(ms) => ts_of(ms, name),
        _ => Err(DecodeError::Field(name)),
    }
}

/// An instant from its milliseconds, kept within chrono's range so later local-time arithmetic cannot fail.
pub(crate) fn ts_of(ms: i64, name: &'static str) -> Result<Ts, DecodeError> {
    if Ts(ms).to_utc().is_none() || !(0..=253_402_300_799_999).contains(&ms) {
        return Err(DecodeError::Invalid {
            field: name,
            reason: format!("instant {ms} out of range"),
        });
    }
    Ok(Ts(ms))
}

pub(crate) fn as_money(v: Value, name: &'static str) -> Result<Decimal, DecodeError> {
    let bytes: Vec<u8> = match v {
        Value::Decimal(d) => <Vec<u8>>::try_from(&d).map_err(|e| DecodeError::Invalid {
            field: name,
            reason: e.to_string(),
        })?,
        Value::Bytes(b) => b,
        _ => return Err(DecodeError::Field(name)),
    };
    money_of(&bytes, name)
}

/// An amount from a `decimal(28, 4)`'s bytes: big-endian two's complement, at most 16 bytes.
pub(crate) fn money_of(bytes: &[u8], name: &'static str) -> Result<Decimal, DecodeError> {
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(DecodeError::Invalid {
            field: name,
            reason: format!("decimal of {} bytes", bytes.len()),
        });
    }
    // Big-endian two's complement, sign-extended to 128 bits.
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(buf);
    Decimal::try_from_i128_with_scale(unscaled, MONEY_SCALE).map_err(|_| DecodeError::Invalid {
        field: name,
        reason: "amount out of range".into(),
    })
}

/// A credit limit or another amount the engine keeps in eight bytes: refused, naming the field, past what
/// [`Amount`](mora_domain::amount::Amount) holds (at most 10^14 units; the schema's scale already bounds the places).
pub(crate) fn bounded(
    v: Decimal,
    name: &'static str,
) -> Result<mora_domain::amount::Amount, DecodeError> {
    mora_domain::amount::Amount::new(v).ok_or(DecodeError::Invalid {
        field: name,
        reason: "amount out of range: at most 100000000000000 units".into(),
    })
}

/// A `decimal(28, 4)`'s bytes for an amount: the minimal big-endian two's complement of the unscaled value (the
/// bytes are `buf[start..]`). Refuses amounts with more than four decimal places rather than rounding them.
pub(crate) fn money_bytes(
    d: Decimal,
    name: &'static str,
) -> Result<([u8; 16], usize), EncodeError> {
    let mut scaled = d;
    scaled.rescale(MONEY_SCALE);
    if scaled != d || scaled.scale() != MONEY_SCALE {
        return Err(EncodeError::Precision(name));
    }
    let bytes = scaled.mantissa().to_be_bytes();
    // Minimal two's-complement form: drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok((bytes, start))
}

pub(crate) fn money(d: Decimal, name: &'static str) -> Result<Value, EncodeError> {
    let (bytes, start) = money_bytes(d, name)?;
    Ok(Value::Decimal(apache_avro::Decimal::from(&bytes[start..])))
}

pub(crate) fn date(d: NaiveDate) -> Value {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    Value::Date((d - epoch).num_days() as i32)
}

pub(crate) fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

pub(crate) fn opt(v: Option<Value>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

pub(crate) fn symbol(index: usize, name: &str) -> Value {
    Value::Enum(index as u32, name.to_ascii_uppercase())
}

pub(crate) fn channel(c: Channel) -> Value {
    let idx = Channel::ALL.iter().position(|x| *x == c).unwrap_or(0);
    symbol(idx, c.as_str())
}

pub(crate) fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    )
}

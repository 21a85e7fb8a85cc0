//! Debtor state, format 3: a binary layout of mora's own, written and read field by field with no names, no serde
//! and, for a typical debtor, no allocation.
//!
//! ```text
//! state      = id:str  present:u8  [profile]  revoked:u8  obligations  cursor  derived  history  [wake:ts]  [cold]
//! present    = bit 0 profile, bit 1 next wake, bit 2 cold part
//! profile    = country:str  region:opt-str  time_zone:str  zone:str  customer_type:u8  credit_limit:amount
//!              credit_currency:ccy  risk_score:uv  preferred_channel:u8 (0xff none)  consent:u8  flags:u8
//! obligations= n:uv  { id:str  product:str  currency:ccy  amount:amount  outstanding:amount  due:date
//!              restructured:u8 }
//! cursor     = strategy:uv  anchor:opt-date  entered:opt-date  done:uv  next_step:opt-ts
//! derived    = dpd:uv  bucket:u8  stage:u8  stage_entered:opt-date  segment:uv  priority:sv
//!              outstanding_base:amount  overdue_base:amount  queues:uv
//! history    = episodes cures self_cures promises_kept promises_broken:u8  bits:u8 (in_episode, contacted)
//! cold       = payments  credit  promises  disputes  contacts  issued  status  pending
//!   payments = n:uv { id:str currency:ccy  n:uv { obligation:str amount } to_credit:amount reversed:u8 }
//!   credit   = n:uv { currency:ccy amount }      promises = n:uv { id:str currency:ccy amount paid:amount deadline:ts }
//!   disputes = n:uv { str }                      contacts = n:uv { at:ts channel:u8 kind:u8 }
//!   issued   = n:uv { u64 little-endian }        status   = charged_off:u8 agency:opt-str plan:opt-str replies:u8
//!   pending  = len:uv  postcard bytes of the deferred actions (rare; full actions)
//! uv = unsigned LEB128 varint; sv = zig-zag varint; str = uv length + UTF-8; opt-x = u8 0/1 + x;
//! ccy = 3 ASCII bytes; amount = scale:u8 + mantissa:sv (i128); date = days from 0001-01-01:sv; ts = ms:sv
//! ```
//!
//! Channels are written by their index in [`Channel::ALL`], stages in [`Stage::ALL`], customer types and mark kinds
//! in declaration order: appending a variant keeps every stored row readable, reordering is a new format.

use chrono::NaiveDate;
use chrono_tz::Tz;
use compact_str::CompactString;
use mora_domain::amount::Amount;
use mora_domain::debtor::{
    Allocations, Cold, ContactMark, Debtor, Derived, History, MarkKind, Obligation, Obligations,
    PaymentRecord, PendingAction, Promise, Status, StrategyCursor,
};
use mora_domain::event::{CustomerType, DebtorFlags, Profile};
use mora_domain::ids::{Channel, ChannelSet, Currency};
use mora_domain::money::{Balances, CentAmount};
use mora_domain::stage::Stage;
use mora_domain::sym::Sym;
use mora_domain::time::Ts;
use rust_decimal::Decimal;

/// Why bytes do not decode as format 3.
#[derive(Debug, thiserror::Error)]
#[error("format 3, {0}")]
pub(super) struct LayoutError(&'static str);

type Read<T> = Result<T, LayoutError>;

const PROFILE: u8 = 1;
const WAKE: u8 = 2;
const COLD: u8 = 4;

/// Appends `d` in format 3 to `out`.
pub(super) fn write(d: &Debtor, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.str(&d.id);
    let cold = d.cold();
    let has_cold = !cold.is_empty();
    let present = u8::from(d.profile.is_some()) * PROFILE
        + u8::from(d.next_wake != Ts::MAX) * WAKE
        + u8::from(has_cold) * COLD;
    w.u8(present);
    if let Some(p) = &d.profile {
        w.profile(p);
    }
    w.u8(d.revoked.bits());
    w.uv(d.obligations.len() as u64);
    for o in &d.obligations {
        w.str(&o.id);
        w.str(&o.product);
        w.ccy(o.currency);
        w.bounded(o.amount);
        w.bounded(o.outstanding);
        w.date(o.due);
        w.u8(u8::from(o.restructured));
    }
    w.cursor(&d.cursor);
    w.derived(&d.derived);
    w.history(&d.history);
    if d.next_wake != Ts::MAX {
        w.ts(d.next_wake);
    }
    if has_cold {
        w.cold(cold);
    }
}

/// Reads a debtor written by [`write`]; every byte must be used.
pub(super) fn read(bytes: &[u8]) -> Read<Debtor> {
    let mut r = Reader::new(bytes);
    let id = r.str()?;
    let present = r.u8()?;
    if present & !(PROFILE | WAKE | COLD) != 0 {
        return Err(LayoutError("unknown parts present"));
    }
    let profile = if present & PROFILE != 0 {
        Some(r.profile()?)
    } else {
        None
    };
    let revoked = ChannelSet::from_bits(r.u8()?).ok_or(LayoutError("bad channel set"))?;
    let n = r.len()?;
    let mut obligations = Obligations::with_capacity(n);
    for _ in 0..n {
        obligations.push(Obligation {
            id: r.str()?,
            product: r.str()?,
            currency: r.ccy()?,
            amount: r.bounded()?,
            outstanding: r.bounded()?,
            due: r.date()?,
            restructured: r.bool()?,
        });
    }
    let classification = (r.cursor()?, r.derived()?, r.history()?);
    let next_wake = if present & WAKE != 0 {
        r.ts()?
    } else {
        Ts::MAX
    };
    let cold = if present & COLD != 0 {
        Some(Box::new(r.cold()?))
    } else {
        None
    };
    if !r.0.is_empty() {
        return Err(LayoutError("bytes left after the state"));
    }
    Ok(Debtor::from_parts(
        id,
        profile,
        revoked,
        obligations,
        classification,
        next_wake,
        cold,
    ))
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn uv(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn sv(&mut self, v: i64) {
        self.uv(((v << 1) ^ (v >> 63)) as u64);
    }

    fn str(&mut self, s: &str) {
        self.uv(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }

    fn ccy(&mut self, c: Currency) {
        self.0.extend_from_slice(c.as_str().as_bytes());
    }

    fn amount(&mut self, a: Decimal) {
        self.u8(a.scale() as u8);
        let m = a.mantissa();
        if let Ok(small) = i64::try_from(m) {
            // The same bytes as the 128-bit path below, faster.
            self.sv(small);
            return;
        }
        let mut z = ((m << 1) ^ (m >> 127)) as u128;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }

    /// An [`Amount`]: the same bytes as [`Writer::amount`] of the decimal it holds.
    fn bounded(&mut self, a: Amount) {
        let (m, scale) = a.parts();
        self.u8(scale as u8);
        self.sv(m);
    }

    fn date(&mut self, d: NaiveDate) {
        self.sv(i64::from(chrono::Datelike::num_days_from_ce(&d)));
    }

    fn opt_date(&mut self, d: Option<NaiveDate>) {
        match d {
            Some(d) => {
                self.u8(1);
                self.date(d);
            }
            None => self.u8(0),
        }
    }

    fn ts(&mut self, t: Ts) {
        self.sv(t.0);
    }

    fn opt_ts(&mut self, t: Option<Ts>) {
        match t {
            Some(t) => {
                self.u8(1);
                self.ts(t);
            }
            None => self.u8(0),
        }
    }

    fn profile(&mut self, p: &Profile) {
        self.str(&p.country);
        self.opt_str(p.region.as_deref());
        self.str(p.time_zone.name());
        self.str(&p.zone);
        self.u8(match p.customer_type {
            CustomerType::Individual => 0,
            CustomerType::SmallBusiness => 1,
            CustomerType::Corporate => 2,
        });
        self.bounded(p.credit_limit);
        self.ccy(p.credit_currency);
        self.uv(u64::from(p.risk_score));
        self.u8(p.preferred_channel.map_or(0xff, channel_code));
        self.u8(p.consent.bits());
        let f = &p.flags;
        self.u8(u8::from(f.deceased)
            | u8::from(f.bankruptcy) << 1
            | u8::from(f.cease_and_desist) << 2
            | u8::from(f.lawsuit_served) << 3
            | u8::from(f.attorney) << 4
            | u8::from(f.vip) << 5);
    }

    fn cursor(&mut self, c: &StrategyCursor) {
        self.uv(u64::from(c.strategy));
        self.opt_date(c.anchor);
        self.opt_date(c.entered);
        self.uv(c.done);
        self.opt_ts(c.next_step());
    }

    fn derived(&mut self, d: &Derived) {
        self.uv(u64::from(d.dpd));
        self.u8(d.bucket);
        self.u8(stage_code(d.stage));
        self.opt_date(d.stage_entered);
        self.uv(u64::from(d.segment));
        self.sv(d.priority);
        self.amount(d.outstanding_base.get());
        self.amount(d.overdue_base.get());
        self.uv(u64::from(d.queues));
    }

    fn history(&mut self, h: &History) {
        self.0.extend_from_slice(&[
            h.episodes,
            h.cures,
            h.self_cures,
            h.promises_kept,
            h.promises_broken,
            u8::from(h.in_episode) | u8::from(h.contacted_in_episode) << 1,
        ]);
    }

    fn cold(&mut self, c: &Cold) {
        self.uv(c.payments.len() as u64);
        for p in &c.payments {
            self.str(&p.id);
            self.ccy(p.currency);
            self.uv(p.allocations.len() as u64);
            for (o, a) in &p.allocations {
                self.str(o);
                self.amount(*a);
            }
            self.amount(p.to_credit);
            self.u8(u8::from(p.reversed));
        }
        self.uv(c.credit.iter().count() as u64);
        for (ccy, a) in c.credit.iter() {
            self.ccy(ccy);
            self.amount(a);
        }
        self.uv(c.promises.len() as u64);
        for p in &c.promises {
            self.str(&p.id);
            self.ccy(p.currency);
            self.amount(p.amount);
            self.amount(p.paid);
            self.ts(p.deadline);
        }
        self.uv(c.disputes.len() as u64);
        for d in &c.disputes {
            self.str(d);
        }
        self.uv(c.contacts.len() as u64);
        for m in &c.contacts {
            self.ts(m.at);
            self.u8(channel_code(m.channel));
            self.u8(match m.kind {
                MarkKind::Attempt => 0,
                MarkKind::Conversation => 1,
            });
        }
        self.uv(c.issued.len() as u64);
        for fp in &c.issued {
            self.0.extend_from_slice(&fp.to_le_bytes());
        }
        let s = &c.status;
        self.u8(u8::from(s.charged_off));
        self.opt_str(s.agency.as_deref());
        self.opt_str(s.plan.as_deref());
        self.u8(s.pending_replies);
        if c.pending.is_empty() {
            self.uv(0);
        } else {
            // Deferred actions are rare and carry whole actions: postcard writes them (it cannot fail on a Vec).
            let bytes = postcard::to_stdvec(&c.pending).unwrap_or_default();
            self.uv(bytes.len() as u64);
            self.0.extend_from_slice(&bytes);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader(bytes)
    }

    #[inline]
    fn u8(&mut self) -> Read<u8> {
        let (&b, rest) = self.0.split_first().ok_or(LayoutError("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    fn bool(&mut self) -> Read<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LayoutError("bad flag")),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if self.0.len() < n {
            return Err(LayoutError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    #[inline]
    fn uv(&mut self) -> Read<u64> {
        // Most varints of a state (lengths, counts, small codes) are one byte.
        if let Some((&b, rest)) = self.0.split_first()
            && b < 0x80
        {
            self.0 = rest;
            return Ok(u64::from(b));
        }
        self.uv_long()
    }

    fn uv_long(&mut self) -> Read<u64> {
        let mut v = 0u64;
        for (i, &b) in self.0.iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err(LayoutError(if self.0.len() < 10 {
            "truncated"
        } else {
            "varint too long"
        }))
    }

    fn sv(&mut self) -> Read<i64> {
        let z = self.uv()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    /// A count of items, each at least one byte: never more than the bytes left.
    fn len(&mut self) -> Read<usize> {
        let n = self.uv()?;
        if n > self.0.len() as u64 {
            return Err(LayoutError("count beyond the bytes left"));
        }
        Ok(n as usize)
    }

    fn int<T: TryFrom<u64>>(&mut self) -> Read<T> {
        T::try_from(self.uv()?).map_err(|_| LayoutError("integer out of range"))
    }

    /// Text, as an inline string or an interned symbol.
    fn str<T: Text>(&mut self) -> Read<T> {
        let n = self.len()?;
        let b = self.take(n)?;
        T::from_utf8(b).ok_or(LayoutError("text is not UTF-8"))
    }

    fn opt_str<T: Text>(&mut self) -> Read<Option<T>> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    fn ccy(&mut self) -> Read<Currency> {
        let b = self.take(3)?;
        std::str::from_utf8(b)
            .ok()
            .and_then(Currency::parse)
            .ok_or(LayoutError("bad currency"))
    }

    /// An amount written by [`Writer::bounded`] (or [`Writer::amount`] of a value within its bounds), read
    /// without a decimal in between.
    fn bounded(&mut self) -> Read<Amount> {
        let scale = u32::from(self.u8()?);
        let m = self.sv()?;
        Amount::from_parts(m, scale).ok_or(LayoutError("amount out of range"))
    }

    fn amount(&mut self) -> Read<Decimal> {
        let scale = u32::from(self.u8()?);
        // Most amounts fit in 63 bits: read them with 64-bit arithmetic.
        let mut z = 0u128;
        let mut small = 0u64;
        for shift in (0..63).step_by(7) {
            let b = self.u8()?;
            small |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                let m = (small >> 1) as i64 ^ -((small & 1) as i64);
                return Decimal::try_from_i128_with_scale(i128::from(m), scale)
                    .map_err(|_| LayoutError("amount out of range"));
            }
        }
        z |= u128::from(small);
        for shift in (63..128).step_by(7) {
            let b = self.u8()?;
            z |= u128::from(b & 0x7f) << shift;
            if b < 0x80 {
                let m = (z >> 1) as i128 ^ -((z & 1) as i128);
                return Decimal::try_from_i128_with_scale(m, scale)
                    .map_err(|_| LayoutError("amount out of range"));
            }
        }
        Err(LayoutError("amount too long"))
    }

    /// An amount written by [`Writer::amount`] kept at cents: a value already at cents (every total the engine
    /// stores) is taken without a decimal in between, anything else is rounded as [`CentAmount::new`] does.
    fn cent(&mut self) -> Read<CentAmount> {
        let start = self.0;
        let scale = u32::from(self.u8()?);
        if let Some(c) = self
            .sv()
            .ok()
            .and_then(|m| CentAmount::from_parts(m, scale))
        {
            return Ok(c);
        }
        self.0 = start;
        Ok(CentAmount::new(self.amount()?))
    }

    fn date(&mut self) -> Read<NaiveDate> {
        let days = i32::try_from(self.sv()?).map_err(|_| LayoutError("date out of range"))?;
        DATES.with(|cache| {
            let slot = &cache[days as u32 as usize % DATE_CACHE];
            if let (d, Some(date)) = slot.get()
                && d == days
            {
                return Ok(date);
            }
            let date = NaiveDate::from_num_days_from_ce_opt(days)
                .ok_or(LayoutError("date out of range"))?;
            slot.set((days, Some(date)));
            Ok(date)
        })
    }

    fn opt_date(&mut self) -> Read<Option<NaiveDate>> {
        Ok(if self.bool()? {
            Some(self.date()?)
        } else {
            None
        })
    }

    fn ts(&mut self) -> Read<Ts> {
        self.sv().map(Ts)
    }

    fn opt_ts(&mut self) -> Read<Option<Ts>> {
        Ok(if self.bool()? { Some(self.ts()?) } else { None })
    }

    fn channel(&mut self) -> Read<Channel> {
        let c = self.u8()?;
        Channel::ALL
            .get(usize::from(c))
            .copied()
            .ok_or(LayoutError("bad channel"))
    }

    fn profile(&mut self) -> Read<Profile> {
        let country = self.str()?;
        let region = self.opt_str()?;
        let time_zone = self.time_zone()?;
        let zone = self.str()?;
        let customer_type = match self.u8()? {
            0 => CustomerType::Individual,
            1 => CustomerType::SmallBusiness,
            2 => CustomerType::Corporate,
            _ => return Err(LayoutError("bad customer type")),
        };
        let credit_limit = self.bounded()?;
        let credit_currency = self.ccy()?;
        let risk_score = self.int()?;
        let preferred_channel = match self.u8()? {
            0xff => None,
            c => Some(
                Channel::ALL
                    .get(usize::from(c))
                    .copied()
                    .ok_or(LayoutError("bad channel"))?,
            ),
        };
        let consent = ChannelSet::from_bits(self.u8()?).ok_or(LayoutError("bad channel set"))?;
        let f = self.u8()?;
        Ok(Profile {
            country,
            region,
            time_zone,
            zone,
            customer_type,
            credit_limit,
            credit_currency,
            risk_score,
            preferred_channel,
            consent,
            flags: DebtorFlags {
                deceased: f & 1 != 0,
                bankruptcy: f & 2 != 0,
                cease_and_desist: f & 4 != 0,
                lawsuit_served: f & 8 != 0,
                attorney: f & 16 != 0,
                vip: f & 32 != 0,
            },
        })
    }

    /// A time zone by name; the last few names read are remembered (a partition's debtors share a handful).
    fn time_zone(&mut self) -> Read<Tz> {
        let n = self.len()?;
        let name = self.take(n)?;
        ZONES.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, tz)) = cache.iter().find(|(k, _)| k.as_bytes() == name) {
                return Ok(*tz);
            }
            let s = std::str::from_utf8(name).map_err(|_| LayoutError("text is not UTF-8"))?;
            let tz: Tz = s.parse().map_err(|_| LayoutError("unknown time zone"))?;
            if cache.len() == ZONE_CACHE {
                cache.remove(0);
            }
            cache.push((tz.name(), tz));
            Ok(tz)
        })
    }

    fn cursor(&mut self) -> Read<StrategyCursor> {
        Ok(StrategyCursor {
            strategy: self.int()?,
            anchor: self.opt_date()?,
            entered: self.opt_date()?,
            done: self.uv()?,
            next_step: self.opt_ts()?.unwrap_or(Ts::MAX),
        })
    }

    fn derived(&mut self) -> Read<Derived> {
        Ok(Derived {
            dpd: self.int()?,
            bucket: self.u8()?,
            stage: *Stage::ALL
                .get(usize::from(self.u8()?))
                .ok_or(LayoutError("bad stage"))?,
            stage_entered: self.opt_date()?,
            segment: self.int()?,
            priority: self.sv()?,
            outstanding_base: self.cent()?,
            overdue_base: self.cent()?,
            queues: self.int()?,
        })
    }

    fn history(&mut self) -> Read<History> {
        let b = self.take(6)?;
        Ok(History {
            episodes: b[0],
            cures: b[1],
            self_cures: b[2],
            promises_kept: b[3],
            promises_broken: b[4],
            in_episode: b[5] & 1 != 0,
            contacted_in_episode: b[5] & 2 != 0,
        })
    }

    fn cold(&mut self) -> Read<Cold> {
        let mut c = Cold::default();
        for _ in 0..self.len()? {
            let id = self.str()?;
            let currency = self.ccy()?;
            let n = self.len()?;
            let mut allocations = Allocations::with_capacity(n);
            for _ in 0..n {
                allocations.push((self.str()?, self.amount()?));
            }
            c.payments.push(PaymentRecord {
                id,
                currency,
                allocations,
                to_credit: self.amount()?,
                reversed: self.bool()?,
            });
        }
        let mut credit = Balances::default();
        for _ in 0..self.len()? {
            let ccy = self.ccy()?;
            credit.add(ccy, self.amount()?);
        }
        c.credit = credit;
        for _ in 0..self.len()? {
            c.promises.push(Promise {
                id: self.str()?,
                currency: self.ccy()?,
                amount: self.amount()?,
                paid: self.amount()?,
                deadline: self.ts()?,
            });
        }
        for _ in 0..self.len()? {
            c.disputes.push(self.str()?);
        }
        for _ in 0..self.len()? {
            c.contacts.push(ContactMark {
                at: self.ts()?,
                channel: self.channel()?,
                kind: match self.u8()? {
                    0 => MarkKind::Attempt,
                    1 => MarkKind::Conversation,
                    _ => return Err(LayoutError("bad contact kind")),
                },
            });
        }
        for _ in 0..self.len()? {
            let b = self.take(8)?;
            let mut fp = [0u8; 8];
            fp.copy_from_slice(b);
            c.issued.push(u64::from_le_bytes(fp));
        }
        c.status = Status {
            charged_off: self.bool()?,
            agency: self.opt_str()?,
            plan: self.opt_str()?,
            pending_replies: self.u8()?,
        };
        let n = self.len()?;
        if n > 0 {
            let bytes = self.take(n)?;
            c.pending = postcard::from_bytes::<thin_vec::ThinVec<PendingAction>>(bytes)
                .map_err(|_| LayoutError("deferred actions unreadable"))?;
        }
        Ok(c)
    }
}

/// Time zones remembered per thread by the reader.
const ZONE_CACHE: usize = 8;

/// Calendar dates remembered per thread by the reader, one per slot by day number (a power of two): the dates of a
/// portfolio's states cluster in the last months (due dates, anchors, stage entries), and building a calendar date
/// from a day number costs divisions.
const DATE_CACHE: usize = 512;

type DateSlot = std::cell::Cell<(i32, Option<NaiveDate>)>;

thread_local! {
    static ZONES: std::cell::RefCell<Vec<(&'static str, Tz)>> = const { std::cell::RefCell::new(Vec::new()) };
    static DATES: [DateSlot; DATE_CACHE] = const { [const { std::cell::Cell::new((0, None)) }; DATE_CACHE] };
}

/// Text a state holds, built from its bytes.
trait Text: Sized {
    /// `None` when the bytes are not UTF-8.
    fn from_utf8(bytes: &[u8]) -> Option<Self>;
}

impl Text for CompactString {
    fn from_utf8(bytes: &[u8]) -> Option<Self> {
        CompactString::from_utf8(bytes).ok()
    }
}

/// A symbol seen recently is found by its bytes before they are validated.
impl Text for Sym {
    fn from_utf8(bytes: &[u8]) -> Option<Self> {
        Sym::from_utf8(bytes)
    }
}

fn channel_code(c: Channel) -> u8 {
    Channel::ALL.iter().position(|x| *x == c).unwrap_or(0) as u8
}

fn stage_code(s: Stage) -> u8 {
    Stage::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        Writer(&mut out).uv(v);
        out
    }

    #[test]
    fn varints_of_every_length_read_back_and_bad_ones_are_refused_by_name() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX >> 1, u64::MAX] {
            let b = varint(v);
            let mut r = Reader::new(&b);
            assert_eq!(r.uv().unwrap(), v, "{v}");
            assert!(r.0.is_empty(), "{v}: every byte used");
            for cut in 0..b.len() {
                let e = Reader::new(&b[..cut]).uv().unwrap_err();
                assert_eq!(e.0, "truncated", "{v} cut at {cut}");
            }
        }
        assert_eq!(varint(300), [0xac, 0x02], "LEB128, low group first");
        let eleven = [0x80; 11];
        assert_eq!(Reader::new(&eleven).uv().unwrap_err().0, "varint too long");
    }

    #[test]
    fn a_repeated_date_reads_as_the_same_date_and_a_different_one_as_itself() {
        let days = |d: NaiveDate| {
            let mut out = Vec::new();
            Writer(&mut out).date(d);
            out
        };
        let a = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let b = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
        // Dates a whole number of cache sizes apart share a slot of the date cache, and one before the era has a
        // negative day number: each must still read as itself, in any order.
        let c = a + chrono::Days::new(DATE_CACHE as u64);
        let d = NaiveDate::from_ymd_opt(-3, 7, 1).unwrap();
        let dates = [a, a, b, a, c, a, c, d, d, a];
        let bytes: Vec<u8> = dates.into_iter().flat_map(days).collect();
        let mut r = Reader::new(&bytes);
        let read: Vec<NaiveDate> = dates.iter().map(|_| r.date().unwrap()).collect();
        assert_eq!(read, dates);
    }
}

//! The fast path: input records written with their family's *current* schema (every record a producer on the
//! current contract sends) are read straight from the Avro binary into domain events, without building
//! apache-avro's generic value tree. Records written with an older schema go through the generic path and Avro
//! schema resolution ([`crate::events::decode_event_generic`]). Both paths accept and refuse the same bytes and give
//! the same events; `tests::fast_and_generic_paths_agree` checks that on every event kind and on mutated bytes.

use chrono::NaiveDate;
use compact_str::CompactString;
use mora_domain::event::{
    CustomerType, DebtorFlags, DisputeOutcome, Envelope, EventKind, Installment, ObligationOpened,
    Outcome, Profile,
};
use mora_domain::ids::{Channel, ChannelSet, Currency};
use mora_domain::time::Ts;
use rust_decimal::Decimal;

use crate::codec;
use crate::error::DecodeError;
use crate::registry::Family;

/// The `Channel` enum's symbols in schema order, with the channel each names (read by index, no text compared).
const CHANNELS: [(Channel, &str); 7] = [
    (Channel::Dialer, "DIALER"),
    (Channel::Sms, "SMS"),
    (Channel::Whatsapp, "WHATSAPP"),
    (Channel::Email, "EMAIL"),
    (Channel::Letter, "LETTER"),
    (Channel::Agency, "AGENCY"),
    (Channel::Legal, "LEGAL"),
];
/// The `Outcome` enum's symbols in schema order, with the outcome each names.
const OUTCOMES: [(Outcome, &str); 9] = [
    (Outcome::Delivered, "DELIVERED"),
    (Outcome::Failed, "FAILED"),
    (Outcome::Read, "READ"),
    (Outcome::Replied, "REPLIED"),
    (Outcome::Answered, "ANSWERED"),
    (Outcome::RightPartyContact, "RIGHT_PARTY_CONTACT"),
    (Outcome::NoAnswer, "NO_ANSWER"),
    (Outcome::WrongNumber, "WRONG_NUMBER"),
    (Outcome::OptOut, "OPT_OUT"),
];
/// Branches of each family's payload union in the current schemas.
const BRANCH_COUNT: [(Family, u64); 6] = [
    (Family::Account, 5),
    (Family::Obligation, 3),
    (Family::Payment, 3),
    (Family::Promise, 1),
    (Family::Dispute, 2),
    (Family::ContactOutcome, 1),
];

/// A cursor over an Avro body.
struct Body<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn truncated() -> DecodeError {
    DecodeError::Malformed("record truncated".into())
}

fn malformed(what: &str) -> DecodeError {
    DecodeError::Malformed(what.to_string())
}

impl<'a> Body<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// A zigzag varint of at most ten bytes.
    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(malformed("integer overflow"))
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        i32::try_from(self.long()?).map_err(|_| malformed("int out of range"))
    }

    fn boolean(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::Malformed(format!("invalid boolean {b}"))),
        }
    }

    fn raw(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.long()?).map_err(|_| malformed("negative length"))?;
        let end = self.pos.checked_add(len).ok_or_else(truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.raw()?).map_err(|_| malformed("string is not UTF-8"))
    }

    /// Text, as an inline string or an interned symbol.
    fn string<T: for<'s> From<&'s str>>(&mut self) -> Result<T, DecodeError> {
        self.str().map(T::from)
    }

    fn id(&mut self, field: &'static str) -> Result<CompactString, DecodeError> {
        let s: CompactString = self.string()?;
        if s.is_empty() {
            return Err(DecodeError::Invalid {
                field,
                reason: "must not be empty".into(),
            });
        }
        Ok(s)
    }

    /// A `["null", T]` union's branch: `false` for null.
    fn present(&mut self) -> Result<bool, DecodeError> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            i => Err(DecodeError::Malformed(format!(
                "union index {i} out of range"
            ))),
        }
    }

    fn opt_string<T: for<'s> From<&'s str>>(&mut self) -> Result<Option<T>, DecodeError> {
        self.present()?.then(|| self.string()).transpose()
    }

    fn symbol<T: Copy>(&mut self, symbols: &[(T, &str)]) -> Result<T, DecodeError> {
        let i = self.int()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| symbols.get(i))
            .map(|(v, _)| *v)
            .ok_or_else(|| DecodeError::Malformed(format!("enum index {i} out of range")))
    }

    /// A currency code, read from its bytes: three upper-case ASCII letters are valid UTF-8 without a check.
    fn currency(&mut self, field: &'static str) -> Result<Currency, DecodeError> {
        let raw = self.raw()?;
        Currency::from_bytes(raw).ok_or_else(|| DecodeError::Invalid {
            field,
            reason: format!("`{}` is not an ISO 4217 code", String::from_utf8_lossy(raw)),
        })
    }

    fn money(&mut self, field: &'static str) -> Result<Decimal, DecodeError> {
        codec::money_of(self.raw()?, field)
    }

    fn date(&mut self, field: &'static str) -> Result<NaiveDate, DecodeError> {
        codec::date_of(self.int()?, field)
    }

    fn ts(&mut self, field: &'static str) -> Result<Ts, DecodeError> {
        codec::ts_of(self.long()?, field)
    }

    /// An array's items, block by block (a negative count is followed by the block's size in bytes).
    fn array<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(out);
            }
            if count < 0 {
                count = count
                    .checked_neg()
                    .ok_or_else(|| malformed("array block count"))?;
                let _size = self.long()?;
            }
            // Every item takes at least one byte: a count beyond what is left is garbage, not a reason to allocate.
            let count = usize::try_from(count).map_err(|_| malformed("array block count"))?;
            if count > self.bytes.len() - self.pos {
                return Err(truncated());
            }
            out.reserve(count);
            for _ in 0..count {
                out.push(item(self)?);
            }
        }
    }
}

/// Decodes a body written with `family`'s current schema.
pub(crate) fn decode_current(family: Family, body: &[u8]) -> Result<Envelope, DecodeError> {
    let mut b = Body {
        bytes: body,
        pos: 0,
    };
    let event_id = b.id("event_id")?;
    let debtor_id = b.id("debtor_id")?;
    let occurred_at = b.ts("occurred_at")?;
    let branch = b.long()?;
    let branches = BRANCH_COUNT
        .iter()
        .find(|(f, _)| *f == family)
        .map_or(0, |(_, n)| *n);
    if !(0..branches as i64).contains(&branch) {
        return Err(DecodeError::Malformed(format!(
            "union index {branch} out of range"
        )));
    }
    let kind = payload(family, branch, &mut b)?;
    match body.len() - b.pos {
        0 => Ok(Envelope {
            event_id,
            debtor_id,
            occurred_at,
            kind,
        }),
        left => Err(DecodeError::TrailingBytes(left)),
    }
}

/// Reads branch `branch` of `family`'s payload union, the record the envelope carries.
fn payload(family: Family, branch: i64, b: &mut Body<'_>) -> Result<EventKind, DecodeError> {
    Ok(match (family, branch) {
        (Family::Account, 0) => EventKind::DebtorUpserted(profile(b)?),
        (Family::Account, 1) => EventKind::ConsentChanged {
            channel: b.symbol(&CHANNELS)?,
            granted: b.boolean()?,
        },
        (Family::Account, 2) => EventKind::ChargedOff {
            reason: b.string()?,
        },
        (Family::Account, 3) => EventKind::AgencyPlaced {
            agency_id: b.id("agency_id")?,
        },
        (Family::Account, 4) => EventKind::AgencyRecalled {
            agency_id: b.id("agency_id")?,
        },
        (Family::Obligation, 0) => EventKind::ObligationOpened(ObligationOpened {
            obligation_id: b.id("obligation_id")?,
            product: b.string()?,
            currency: b.currency("currency")?,
            amount: b.money("amount")?,
            due_date: b.date("due_date")?,
        }),
        (Family::Obligation, 1) => EventKind::ObligationUpdated {
            obligation_id: b.id("obligation_id")?,
            amount: b.present()?.then(|| b.money("amount")).transpose()?,
            due_date: b.present()?.then(|| b.date("due_date")).transpose()?,
        },
        (Family::Obligation, 2) => EventKind::PaymentPlanAgreed {
            plan_id: b.id("plan_id")?,
            currency: b.currency("currency")?,
            installments: b.array(|b| {
                Ok(Installment {
                    due_date: b.date("due_date")?,
                    amount: b.money("amount")?,
                })
            })?,
        },
        (Family::Payment, 0) => EventKind::PaymentReceived {
            payment_id: b.id("payment_id")?,
            currency: b.currency("currency")?,
            amount: b.money("amount")?,
            obligation_id: b.opt_string()?,
        },
        (Family::Payment, 1) => EventKind::PaymentReversed {
            payment_id: b.id("payment_id")?,
            reason: b.string()?,
        },
        (Family::Payment, 2) => EventKind::CreditNote {
            note_id: b.id("note_id")?,
            currency: b.currency("currency")?,
            amount: b.money("amount")?,
            obligation_id: b.opt_string()?,
        },
        (Family::Promise, 0) => EventKind::PromiseToPay {
            promise_id: b.id("promise_id")?,
            currency: b.currency("currency")?,
            amount: b.money("amount")?,
            promised_by: b.date("promised_by")?,
            taken_by: b.string()?,
        },
        (Family::Dispute, 0) => EventKind::DisputeOpened {
            dispute_id: b.id("dispute_id")?,
            obligation_id: b.opt_string()?,
            reason: b.string()?,
        },
        (Family::Dispute, 1) => {
            let dispute_id = b.id("dispute_id")?;
            let outcome = b.symbol(&[
                (DisputeOutcome::Upheld, "UPHELD"),
                (DisputeOutcome::Rejected, "REJECTED"),
                (DisputeOutcome::Withdrawn, "WITHDRAWN"),
            ])?;
            EventKind::DisputeResolved {
                dispute_id,
                outcome,
            }
        }
        (Family::ContactOutcome, 0) => {
            let action_id = b.id("action_id")?;
            let channel = b.symbol(&CHANNELS)?;
            let outcome = b.symbol(&OUTCOMES)?;
            EventKind::ContactOutcome {
                action_id,
                channel,
                outcome,
            }
        }
        _ => return Err(DecodeError::Field("payload")),
    })
}

fn profile(b: &mut Body<'_>) -> Result<Profile, DecodeError> {
    let country = b.string()?;
    let region = b.opt_string()?;
    let time_zone = codec::time_zone_of(b.str()?)?;
    let zone = b.string()?;
    let customer_type = b.symbol(&[
        (CustomerType::Individual, "INDIVIDUAL"),
        (CustomerType::SmallBusiness, "SMALL_BUSINESS"),
        (CustomerType::Corporate, "CORPORATE"),
    ])?;
    let credit_limit = codec::bounded(b.money("credit_limit")?, "credit_limit")?;
    let credit_currency = b.currency("credit_currency")?;
    let risk_score = codec::risk_score_of(b.int()?)?;
    let preferred_channel = b.present()?.then(|| b.symbol(&CHANNELS)).transpose()?;
    let consent = b
        .array(|b| b.symbol(&CHANNELS))?
        .into_iter()
        .collect::<ChannelSet>();
    let flags = DebtorFlags {
        deceased: b.boolean()?,
        bankruptcy: b.boolean()?,
        cease_and_desist: b.boolean()?,
        lawsuit_served: b.boolean()?,
        attorney: b.boolean()?,
        vip: b.boolean()?,
    };
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
        flags,
    })
}

//! Small identifier and code types shared by every part of the core.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A debtor's id as core banking spells it. Ids up to 24 bytes live inline (no heap allocation).
pub type DebtorId = CompactString;

/// An ISO 4217 currency code, stored as three ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a three-letter upper-case ISO 4217 code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::from_bytes(code.as_bytes())
    }

    /// Parses a code from its bytes (three ASCII upper-case letters; anything else, UTF-8 or not, is refused).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        match *b {
            [x, y, z] if b.iter().all(u8::is_ascii_uppercase) => Some(Self([x, y, z])),
            _ => None,
        }
    }

    /// The code's three letters.
    pub fn bytes(self) -> [u8; 3] {
        self.0
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = CompactString::deserialize(d)?;
        Currency::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a three-letter ISO 4217 currency code"
            ))
        })
    }
}

/// A contact or treatment channel. Each has its own action topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Outbound call placed by a dialer.
    Dialer,
    /// SMS text message.
    Sms,
    /// WhatsApp message.
    Whatsapp,
    /// E-mail.
    Email,
    /// Postal letter.
    Letter,
    /// Placement with an external collection agency.
    Agency,
    /// Referral to legal (lawsuit, garnishment).
    Legal,
}

impl Channel {
    /// Every channel, in a fixed order (the order of summaries and files).
    pub const ALL: [Channel; 7] = [
        Channel::Dialer,
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Email,
        Channel::Letter,
        Channel::Agency,
        Channel::Legal,
    ];

    /// The channel's name as used in topics, files and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Dialer => "dialer",
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
            Channel::Letter => "letter",
            Channel::Agency => "agency",
            Channel::Legal => "legal",
        }
    }

    /// Parses a channel name.
    pub fn parse(s: &str) -> Option<Self> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Channels that reach the debtor directly and so count as contact attempts under contact rules.
    pub fn is_direct_contact(self) -> bool {
        matches!(
            self,
            Channel::Dialer | Channel::Sms | Channel::Whatsapp | Channel::Email
        )
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of channels in one byte.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// The empty set.
    pub const EMPTY: ChannelSet = ChannelSet(0);

    /// The set as bits, bit `i` standing for `Channel::ALL[i]`.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set with these bits (`None` when a bit names no channel).
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits >> Channel::ALL.len() == 0).then_some(ChannelSet(bits))
    }

    /// Every channel.
    pub fn all() -> Self {
        Channel::ALL.into_iter().collect()
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Channel) -> bool {
        self.0 & c.bit() != 0
    }

    /// Adds `c`.
    pub fn insert(&mut self, c: Channel) {
        self.0 |= c.bit();
    }

    /// Removes `c`.
    pub fn remove(&mut self, c: Channel) {
        self.0 &= !c.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The channels in the set, in [`Channel::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Channel> for ChannelSet {
    fn from_iter<I: IntoIterator<Item = Channel>>(iter: I) -> Self {
        let mut s = ChannelSet::EMPTY;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

impl fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A list of channel names in human-readable formats; the bit set itself in binary ones.
impl Serialize for ChannelSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(self.iter().collect::<Vec<_>>())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ChannelSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Ok(Vec::<Channel>::deserialize(d)?.into_iter().collect())
        } else {
            let bits = Deserialize::deserialize(d)?;
            Ok(ChannelSet(bits))
        }
    }
}

//! Interned strings for the few-valued text of a debtor's state: country, region, zone, product.
//!
//! A portfolio of ten million debtors holds a few dozen distinct countries, zones and products; storing each as an
//! inline string costs 24 bytes per field per debtor. A [`Sym`] is one pointer (8 bytes, `Option<Sym>` too) to the
//! single copy of its text, compared by pointer, and ordered and hashed by the text itself, so that every order,
//! hash and serialized form is the one the string had: decisions and stored state do not depend on when a value was
//! first seen.
//!
//! The text of each distinct value is kept for the life of the process (it is never freed). That suits fields drawn
//! from a bounded vocabulary, which is why only those fields use it; ids, free text and amounts do not.
//!
//! Why not a crate: the well-kept interners either hand out a handle without a niche (`Option` doubles its size),
//! hash by a precomputed value of their own (a hash map keyed by a symbol would iterate differently from one keyed
//! by the string) or need a context threaded through every call. This one is ~100 lines without `unsafe`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{LazyLock, RwLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An interned string: one pointer, equal by identity, ordered and hashed as its text.
#[derive(Clone, Copy)]
pub struct Sym(&'static &'static str);

/// Every distinct text interned so far.
static TABLE: LazyLock<RwLock<HashMap<&'static str, Sym>>> = LazyLock::new(Default::default);

/// Slots of the per-thread cache of recent symbols (a power of two).
const RECENT: usize = 64;

thread_local! {
    /// Recently interned symbols by a cheap hash of their bytes: decoding a debtor interns three or four strings
    /// drawn from a small vocabulary, and a hit here costs a short comparison instead of a lock.
    static RECENT_SYMS: RefCell<[Option<Sym>; RECENT]> = const { RefCell::new([None; RECENT]) };
}

/// The cache slot of `s`: its length and a few of its bytes, mixed (not a quality hash, a cheap one).
fn slot(s: &[u8]) -> usize {
    let (first, last) = (
        s.first().copied().unwrap_or(0),
        s.last().copied().unwrap_or(0),
    );
    let mid = s.get(s.len() / 2).copied().unwrap_or(0);
    let h = (s.len() as u32)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(u32::from(first).wrapping_mul(31 * 31))
        .wrapping_add(u32::from(mid).wrapping_mul(31))
        .wrapping_add(u32::from(last));
    (h ^ (h >> 7)) as usize & (RECENT - 1)
}

impl Sym {
    /// The symbol for `s`, interning it the first time it is seen.
    pub fn new(s: &str) -> Sym {
        let i = slot(s.as_bytes());
        if let Some(sym) = Self::recent(i, s.as_bytes()) {
            return sym;
        }
        Self::intern(i, s)
    }

    /// The symbol for the text in `bytes`, or `None` when they are not UTF-8. Bytes equal to those of a symbol
    /// seen recently are that symbol's text, so they are taken without being validated again (decoding a stored
    /// state reads a few such fields per debtor).
    pub fn from_utf8(bytes: &[u8]) -> Option<Sym> {
        let i = slot(bytes);
        if let Some(sym) = Self::recent(i, bytes) {
            return Some(sym);
        }
        let s = std::str::from_utf8(bytes).ok()?;
        Some(Self::intern(i, s))
    }

    /// The symbol in cache slot `i` if its text is `bytes`.
    fn recent(i: usize, bytes: &[u8]) -> Option<Sym> {
        RECENT_SYMS.with_borrow(|r| r[i].filter(|sym| sym.as_str().as_bytes() == bytes))
    }

    /// Interns `s` and remembers it in cache slot `i`.
    fn intern(i: usize, s: &str) -> Sym {
        let sym = Self::lookup_or_insert(s);
        RECENT_SYMS.with_borrow_mut(|r| r[i] = Some(sym));
        sym
    }

    fn lookup_or_insert(s: &str) -> Sym {
        // A poisoned lock only means another thread panicked while holding it; the map itself is always whole
        // (an insert either happened or did not).
        if let Some(sym) = TABLE.read().unwrap_or_else(|e| e.into_inner()).get(s) {
            return *sym;
        }
        let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have interned it between the two locks.
        if let Some(sym) = table.get(s) {
            return *sym;
        }
        let text: &'static str = Box::leak(s.into());
        let sym = Sym(Box::leak(Box::new(text)));
        table.insert(text, sym);
        sym
    }

    /// The text.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// Number of distinct texts interned in this process (for the memory report).
    pub fn interned() -> usize {
        TABLE.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Sym {}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sym {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// Hashed as its text, so a `Sym` hashes like the `str` it borrows as.
impl Hash for Sym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Sym {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::ops::Deref for Sym {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Sym {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Sym {
    fn from(s: &str) -> Sym {
        Sym::new(s)
    }
}

impl From<String> for Sym {
    fn from(s: String) -> Sym {
        Sym::new(&s)
    }
}

impl From<compact_str::CompactString> for Sym {
    fn from(s: compact_str::CompactString) -> Sym {
        Sym::new(&s)
    }
}

impl Default for Sym {
    fn default() -> Sym {
        Sym::new("")
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Sym {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Sym {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sym, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Sym;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sym, E> {
                Ok(Sym::new(v))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_text_equal_by_identity() {
        let a = Sym::new("sym-test-CO");
        let b = Sym::from(String::from("sym-test-CO"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Sym::new("sym-test-MX"));
        assert_eq!(a, "sym-test-CO");
    }

    #[test]
    fn ordered_and_hashed_as_the_text() {
        // Interned in the reverse of their order: the order must still be the text's.
        let (z, a) = (Sym::new("sym-order-z"), Sym::new("sym-order-a"));
        assert!(a < z);
        let hash = |h: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            h(&mut s);
            s.finish()
        };
        assert_eq!(hash(&|s| a.hash(s)), hash(&|s| "sym-order-a".hash(s)));
    }

    #[test]
    fn cache_collisions_give_the_right_symbol() {
        // Many texts of the same length share cache slots; each must come back as itself.
        let texts: Vec<String> = (0..500).map(|i| format!("z{i:04}")).collect();
        let first: Vec<Sym> = texts.iter().map(|t| Sym::new(t)).collect();
        for (t, s) in texts.iter().zip(&first).rev() {
            assert_eq!(Sym::new(t), *s);
            assert_eq!(s.as_str(), t);
        }
    }

    #[test]
    fn from_bytes_the_same_symbol_seen_or_not_and_never_from_bad_text() {
        let fresh = Sym::from_utf8("sym-bytes-Bogotá".as_bytes()).expect("UTF-8");
        assert_eq!(fresh, Sym::new("sym-bytes-Bogotá"));
        // Now cached: the same bytes give the same symbol.
        assert_eq!(Sym::from_utf8("sym-bytes-Bogotá".as_bytes()), Some(fresh));
        // Bytes that are not UTF-8 are refused, whatever shares their cache slot.
        let mut bad = "sym-bytes-Bogotá".as_bytes().to_vec();
        let at = bad.len() - 2;
        bad[at] = 0xff;
        assert_eq!(Sym::from_utf8(&bad), None);
        assert_eq!(Sym::from_utf8(&[0xc3]), None);
    }

    #[test]
    fn same_symbol_across_threads() {
        let here = Sym::new("sym-thread");
        let there = std::thread::spawn(|| Sym::new("sym-thread"))
            .join()
            .unwrap();
        assert_eq!(here, there);
    }

    #[test]
    fn one_pointer_even_optional() {
        assert_eq!(std::mem::size_of::<Sym>(), 8);
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 8);
    }

    #[test]
    fn serialized_as_a_string() {
        let s = Sym::new("Bogotá Norte");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"Bogotá Norte\"");
        assert_eq!(serde_json::from_str::<Sym>(&json).unwrap(), s);
        assert_eq!(
            serde_json::from_str::<Sym>("\"Bogot\\u00e1 Norte\"").unwrap(),
            s
        );
    }
}

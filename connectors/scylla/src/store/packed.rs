//! Chunks of the debtor log and of the ledger as stored: their layout-1 bytes as they are, or, when that is
//! smaller, packed (layout [`PACKED`]): the layout-1 body (everything after the layout byte) compressed as an LZ4
//! block with its length prepended. The database's cost follows the bytes it logs, stores and compacts once the
//! statements are few; states shrink about 1.7× and ledger entries about 3.5× packed, and LZ4 unpacks at memory
//! speed on a restore.

use std::borrow::Cow;

/// The layout byte of a packed chunk.
pub(super) const PACKED: u8 = 2;

/// The layout byte of the plain form, which the chunk readers parse.
const PLAIN: u8 = 1;

/// An unpacked body past this is damage (a chunk holds at most `batch_bytes`, 1 MiB at most, or one state above it).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// `plain` (a layout-1 chunk) as stored: packed when that is smaller.
pub(super) fn pack(plain: Vec<u8>) -> Vec<u8> {
    debug_assert_eq!(plain.first(), Some(&PLAIN));
    let body = &plain[1..];
    let mut packed =
        Vec::with_capacity(1 + 4 + lz4_flex::block::get_maximum_output_size(body.len()));
    packed.push(PACKED);
    packed.extend_from_slice(&lz4_flex::block::compress_prepend_size(body));
    if packed.len() < plain.len() {
        packed
    } else {
        plain
    }
}

/// A stored chunk in its plain form (borrowed when stored plain). Layouts other than these two are left to the
/// chunk readers to refuse by name.
pub(super) fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    match stored.split_first() {
        Some((&PACKED, rest)) => {
            let size = rest
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or("a packed chunk cut short in its length")?;
            if size > MAX_BODY {
                return Err(format!("a packed chunk claims {size} bytes"));
            }
            let mut plain = vec![0; 1 + size];
            plain[0] = PLAIN;
            let n = lz4_flex::block::decompress_into(&rest[4..], &mut plain[1..])
                .map_err(|e| format!("a packed chunk does not unpack: {e}"))?;
            if n != size {
                return Err(format!("a packed chunk unpacks to {n} bytes, not {size}"));
            }
            Ok(Cow::Owned(plain))
        }
        _ => Ok(Cow::Borrowed(stored)),
    }
}

/// [`unpack`] of a chunk read into `stored`, keeping its buffer when it was stored plain.
pub(super) fn unpack_owned(stored: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(match unpack(&stored)? {
        Cow::Owned(plain) => plain,
        Cow::Borrowed(_) => stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(body: &[u8]) -> Vec<u8> {
        let mut v = vec![PLAIN];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_chunk_packs_when_that_is_smaller_and_unpacks_to_its_plain_form() {
        let repetitive = plain(&b"D00000042 early-digital preventive-reminders ".repeat(200));
        let packed = pack(repetitive.clone());
        assert_eq!(packed[0], PACKED);
        assert!(packed.len() * 5 < repetitive.len(), "{}", packed.len());
        assert_eq!(unpack(&packed).unwrap().as_ref(), repetitive.as_slice());
        // Bytes that do not compress are kept plain, and read as they are.
        let noise: Vec<u8> = (0..40u64)
            .flat_map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()).to_le_bytes())
            .collect();
        let kept = pack(plain(&noise));
        assert_eq!(kept, plain(&noise));
        assert!(matches!(unpack(&kept).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn a_damaged_packed_chunk_is_refused_never_misread() {
        let packed = pack(plain(&b"state state state state ".repeat(50)));
        for cut in 1..packed.len() {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = packed.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&huge).unwrap_err().contains("claims"));
        let mut longer = packed;
        longer[1..5].copy_from_slice(&(10_000u32).to_le_bytes());
        assert!(unpack(&longer).is_err());
    }
}

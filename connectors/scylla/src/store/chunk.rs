//! Reading the entries of a chunk (of the debtor log or the ledger): a layout byte, an entry count, then entries of
//! little-endian integers and length-prefixed bytes. Damage or a newer layout is refused with what was wrong, never
//! misread.

/// A chunk's bytes past its header, read front to back.
pub(super) struct ChunkReader<'a> {
    rest: &'a [u8],
}

impl<'a> ChunkReader<'a> {
    /// Opens `chunk`, which must be in `layout` and hold entries of at least `min_entry` bytes each; returns the
    /// reader at the first entry and the entry count.
    pub(super) fn open(
        chunk: &'a [u8],
        layout: u8,
        min_entry: usize,
    ) -> Result<(Self, usize), String> {
        let (&found, rest) = chunk.split_first().ok_or("empty")?;
        if found != layout {
            return Err(format!("layout {found}, this version reads {layout}"));
        }
        let mut r = Self { rest };
        let count = r.u32("the count")? as usize;
        // A count past what the bytes can hold is damage, not a reason to allocate.
        if count > chunk.len() / min_entry.max(1) {
            return Err("the count exceeds what the bytes can hold".into());
        }
        Ok((r, count))
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("cut short in {what}"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(super) fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.array(what).map(i64::from_le_bytes)
    }

    /// The next `n` bytes as UTF-8 text.
    pub(super) fn text(&mut self, n: usize, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n, what)?).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// Checks that every byte was read.
    pub(super) fn finish(self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err("bytes past the last entry".into())
        }
    }
}

//! The byte-level pieces both codecs share: the field writers, and the bounds-checked
//! [`Reader`] of untrusted input with its header check.

use super::{Field, HEADER_LEN, Limits, WireError};

pub(super) fn put_len(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("a field or list longer than u32::MAX cannot be encoded");
    out.extend_from_slice(&n.to_le_bytes());
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

pub(super) fn put_header(out: &mut Vec<u8>, id: u64, tag: u8, flags: u8) {
    out.extend_from_slice(&id.to_le_bytes());
    out.push(tag);
    out.push(flags);
    out.extend_from_slice(&[0, 0]);
}

/// Reads an untrusted message front to back; every read is bounds-checked.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let have = self.left();
        if n > have {
            return Err(WireError::Truncated {
                at: self.pos,
                need: n as u64,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    pub(super) fn i64(&mut self) -> Result<i64, WireError> {
        self.array().map(i64::from_le_bytes)
    }

    pub(super) fn positive_u32(&mut self) -> Result<u32, WireError> {
        match self.u32()? {
            0 => Err(WireError::ZeroCount),
            n => Ok(n),
        }
    }

    /// The bytes of a field whose length prefix `len` has been read: checked against the limit
    /// first, then against the input.
    fn field(&mut self, what: Field, len: u32, max: u32) -> Result<&'a [u8], WireError> {
        if len > max {
            return Err(WireError::TooLarge { what, len, max });
        }
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(n)
    }

    pub(super) fn key_view(&mut self, l: &Limits) -> Result<&'a [u8], WireError> {
        let len = self.u32()?;
        if len == 0 {
            return Err(WireError::EmptyKey);
        }
        self.field(Field::Key, len, l.max_key)
    }

    pub(super) fn value_view(&mut self, l: &Limits) -> Result<&'a [u8], WireError> {
        let len = self.u32()?;
        self.field(Field::Value, len, l.max_value)
    }

    pub(super) fn key(&mut self, l: &Limits) -> Result<Vec<u8>, WireError> {
        self.key_view(l).map(<[u8]>::to_vec)
    }

    pub(super) fn value(&mut self, l: &Limits) -> Result<Vec<u8>, WireError> {
        self.value_view(l).map(<[u8]>::to_vec)
    }

    /// A value, or `None` when `absent` (the field must then be empty).
    pub(super) fn maybe_value_view(
        &mut self,
        absent: bool,
        l: &Limits,
    ) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.u32()?;
        if absent {
            return match len {
                0 => Ok(None),
                len => Err(WireError::AbsentWithValue { len }),
            };
        }
        self.field(Field::Value, len, l.max_value).map(Some)
    }

    pub(super) fn maybe_value(
        &mut self,
        absent: bool,
        l: &Limits,
    ) -> Result<Option<Vec<u8>>, WireError> {
        Ok(self.maybe_value_view(absent, l)?.map(<[u8]>::to_vec))
    }

    /// A list count, checked against the bytes left (each item takes at least `min_item`) so
    /// that no more is reserved than the input can fill.
    pub(super) fn count(&mut self, min_item: usize) -> Result<usize, WireError> {
        let at = self.pos;
        let n = self.u32()?;
        let need = u64::from(n) * min_item as u64;
        if need > self.left() as u64 {
            return Err(WireError::Truncated {
                at: at + 4,
                need,
                have: self.left(),
            });
        }
        Ok(n as usize)
    }

    pub(super) fn finish(self) -> Result<(), WireError> {
        match self.left() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes {
                at: self.pos,
                extra,
            }),
        }
    }
}

/// The header's id, tag and flags, and a reader at the start of the body.
pub(super) fn header(buf: &[u8]) -> Result<(u64, u8, u8, Reader<'_>), WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::ShortHeader { len: buf.len() });
    }
    let mut r = Reader { buf, pos: 0 };
    let id = r.u64()?;
    let tag = r.u8()?;
    let flags = r.u8()?;
    let reserved = r.u16()?;
    if reserved != 0 {
        return Err(WireError::Reserved(reserved));
    }
    Ok((id, tag, flags, r))
}

//! The `.npy` header: written padded so tensor data lands 64-byte aligned,
//! read strictly and bounded.
//!
//! Layout (numpy format 1.0): the magic `\x93NUMPY`, bytes `1` and `0`, a
//! little-endian u16 header length, then an ASCII Python dict literal with
//! the keys `descr`, `fortran_order` and `shape`, padded with spaces and
//! ended by `\n`. Data follows the header directly.

use nnbundle_format::DType;
use nnbundle_format::limits::{DATA_ALIGNMENT, MAX_NPY_HEADER_BYTES, MAX_RANK};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Magic, version and header-length field.
const PREAMBLE: usize = 10;

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The numpy dtype string, such as `<f4`.
    pub descr: String,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The array shape.
    pub shape: Vec<u64>,
    /// Byte offset of the data from the start of the `.npy` bytes.
    pub data_offset: usize,
}

/// Encodes a format 1.0 header for `dtype` and `shape`, padded with spaces
/// so its total length is a multiple of [`DATA_ALIGNMENT`].
pub fn encode_header(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [] => "()".to_owned(),
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}", dtype.npy_descr());
    let align = DATA_ALIGNMENT as usize;
    let unpadded = PREAMBLE + dict.len() + 1;
    let total = unpadded.div_ceil(align) * align;
    let header_len = u16::try_from(total - PREAMBLE).expect("rank-limited headers fit in u16");
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// How many bytes from the start of an entry [`decode_header`] needs, told
/// from its first bytes: the preamble and header length when they are
/// there, all of `bytes` when they cannot be an `.npy` preamble (decoding
/// fails on them anyway), `None` when there are too few to tell.
pub(crate) fn header_extent(bytes: &[u8]) -> Option<usize> {
    let preamble = bytes.get(..PREAMBLE + 2)?;
    match (&preamble[..6] == MAGIC, preamble[6], preamble[7]) {
        (true, 1, 0) => Some(PREAMBLE + usize::from(u16::from_le_bytes([preamble[8], preamble[9]]))),
        (true, 2, 0) => {
            let len = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
            Some((PREAMBLE + 2).saturating_add(usize::try_from(len).unwrap_or(usize::MAX)))
        }
        _ => Some(bytes.len()),
    }
}

/// Parses the header at the start of `bytes`. Accepts numpy format versions
/// 1.0 and 2.0 with an ASCII header of at most [`MAX_NPY_HEADER_BYTES`].
pub fn decode_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    if bytes.len() < PREAMBLE || &bytes[..6] != MAGIC {
        return Err("not an .npy array: the magic `\\x93NUMPY` is missing".into());
    }
    let (len_bytes, start) = match (bytes[6], bytes[7]) {
        (1, 0) => (2, PREAMBLE),
        (2, 0) => (4, PREAMBLE + 2),
        (major, minor) => return Err(format!(".npy format version {major}.{minor} is not supported (1.0 or 2.0)")),
    };
    let mut len = [0u8; 4];
    len[..len_bytes].copy_from_slice(bytes.get(8..8 + len_bytes).ok_or("truncated .npy header")?);
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > MAX_NPY_HEADER_BYTES {
        return Err(format!(".npy header of {header_len} bytes is above the limit of {MAX_NPY_HEADER_BYTES}"));
    }
    let end = start + header_len;
    let text = bytes.get(start..end).ok_or("truncated .npy header")?;
    let text = std::str::from_utf8(text).ok().filter(|t| t.is_ascii()).ok_or(".npy header is not ASCII")?;
    let text = text.strip_suffix('\n').ok_or(".npy header does not end with a newline")?;
    let mut parser = DictParser { s: text.as_bytes(), i: 0 };
    let (descr, fortran_order, shape) = parser.dict()?;
    Ok(NpyHeader { descr, fortran_order, shape, data_offset: end })
}

/// A parser for the restricted Python literal numpy writes:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
struct DictParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl DictParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.i) == Some(&c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) { Ok(()) } else { Err(format!(".npy header: expected `{}` at byte {}", c as char, self.i)) }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = *self.s.get(self.i).ok_or(".npy header: unexpected end")?;
        if quote != b'\'' && quote != b'"' {
            return Err(format!(".npy header: expected a string at byte {}", self.i));
        }
        let start = self.i + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or(".npy header: unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_ws();
        for (word, value) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!(".npy header: expected True or False at byte {}", self.i))
    }

    fn shape(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_ws();
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits");
            let dim = digits.parse::<u64>().map_err(|_| format!(".npy header: bad dimension at byte {start}"))?;
            dims.push(dim);
            if dims.len() > MAX_RANK {
                return Err(format!(".npy header: rank above the limit of {MAX_RANK}"));
            }
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }

    fn dict(&mut self) -> Result<(String, bool, Vec<u64>), String> {
        self.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            if self.eat(b'}') {
                break;
            }
            let key = self.string()?;
            self.expect(b':')?;
            let slot_taken = match key.as_str() {
                "descr" => descr.replace(self.string()?).is_some(),
                "fortran_order" => fortran.replace(self.boolean()?).is_some(),
                "shape" => shape.replace(self.shape()?).is_some(),
                other => return Err(format!(".npy header: unexpected key `{other}`")),
            };
            if slot_taken {
                return Err(format!(".npy header: key `{key}` appears twice"));
            }
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.skip_ws();
        if self.i != self.s.len() {
            return Err(format!(".npy header: unexpected text after the dict at byte {}", self.i));
        }
        match (descr, fortran, shape) {
            (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
            _ => Err(".npy header: needs the keys descr, fortran_order and shape".into()),
        }
    }
}

/// The dtype a `.npy` `descr` stores, for the dtypes bundles use (bf16
/// cannot be told apart from u16 and is never returned).
pub fn dtype_of_descr(descr: &str) -> Option<DType> {
    let descr = match descr {
        "<b1" | "b1" | "?" => "|b1",
        "<i1" | "i1" => "|i1",
        "<u1" | "u1" => "|u1",
        other => other,
    };
    DType::ALL.into_iter().filter(|d| *d != DType::BF16).find(|d| d.npy_descr() == descr)
}

/// A tensor as the bytes of a `.npy` file (format 1.0, C order, little-endian).
pub fn to_npy(tensor: &nnbundle_format::Tensor) -> Vec<u8> {
    let mut out = encode_header(tensor.dtype(), tensor.shape());
    out.extend_from_slice(tensor.as_bytes());
    out
}

/// Reads a `.npy` file's bytes into a tensor, checking the header, the
/// dtype (little-endian f16, f32, f64, i8-i64, u8, bool) and the data length.
pub fn from_npy(bytes: &[u8]) -> Result<nnbundle_format::Tensor, String> {
    let header = decode_header(bytes)?;
    let dtype = dtype_of_descr(&header.descr).ok_or_else(|| {
        format!(
            ".npy dtype `{}` is not one a bundle stores (f16, f32, f64, i8-i64, u8, bool, little-endian)",
            header.descr
        )
    })?;
    if header.fortran_order {
        return Err(".npy array is in Fortran order; save it with numpy.ascontiguousarray first".into());
    }
    let expected = nnbundle_format::byte_size(dtype, &header.shape).map_err(|e| e.to_string())?;
    let data = &bytes[header.data_offset..];
    if data.len() as u64 != expected {
        return Err(format!(
            ".npy data has {} bytes, dtype {dtype} with shape {:?} needs {expected}",
            data.len(),
            header.shape
        ));
    }
    let shape = header
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| "dimension too large".to_string()))
        .collect::<Result<_, _>>()?;
    nnbundle_format::Tensor::from_bytes(dtype, shape, data.to_vec()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_extent_is_what_decoding_needs() {
        let header = encode_header(DType::F32, &[2, 3]);
        assert_eq!(header.len(), 128);
        // Told from the first 12 bytes, and equal to where the data starts.
        assert_eq!(header_extent(&header[..12]), Some(128));
        assert_eq!(decode_header(&header).unwrap().data_offset, 128);
        // Version 2.0: a u32 length after the version.
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend_from_slice(&300u32.to_le_bytes());
        assert_eq!(header_extent(&v2), Some(312));
        // Not `.npy` (a YAML document): nothing more to read, decoding fails on what is there.
        let yaml = b"format_version: \"1.2\"\n";
        assert_eq!(header_extent(yaml), Some(yaml.len()));
        // Too few bytes to tell.
        assert_eq!(header_extent(&header[..11]), None);
    }

    #[test]
    fn encoded_headers_are_aligned_and_parse_back() {
        for shape in [vec![], vec![0], vec![7], vec![2, 3], vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]]
        {
            for dtype in DType::ALL {
                let h = encode_header(dtype, &shape);
                assert_eq!(h.len() % 64, 0);
                let parsed = decode_header(&h).unwrap();
                assert_eq!(parsed.descr, dtype.npy_descr());
                assert!(!parsed.fortran_order);
                assert_eq!(parsed.shape, shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
                assert_eq!(parsed.data_offset, h.len());
            }
        }
    }

    #[test]
    fn header_text_matches_numpy() {
        // What numpy 1.x/2.x writes for np.zeros((2, 3), '<f4'): hand-copied.
        let h = encode_header(DType::F32, &[2, 3]);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), "{text}");
        assert_eq!(&h[..10], b"\x93NUMPY\x01\x00\x76\x00");
    }

    #[test]
    fn npy_round_trip_and_errors() {
        let t = nnbundle_format::Tensor::from_vec(vec![2, 2], vec![1i16, -2, 3, -4]).unwrap();
        assert_eq!(from_npy(&to_npy(&t)).unwrap(), t);
        let mut bytes = to_npy(&t);
        bytes.pop();
        assert!(from_npy(&bytes).unwrap_err().contains("data has 7 bytes"));
        let mut big_endian = to_npy(&nnbundle_format::Tensor::scalar(1.0f32));
        let at = big_endian.windows(3).position(|w| w == b"<f4").unwrap();
        big_endian[at] = b'>';
        let big_endian = big_endian.as_slice();
        assert!(from_npy(big_endian).unwrap_err().contains("`>f4` is not one a bundle stores"));
    }

    #[test]
    fn rejects_bad_headers() {
        let cases: [(&[u8], &str); 6] = [
            (b"PK\x03\x04", "magic"),
            (b"\x93NUMPY\x03\x00\x00\x00", "version 3.0"),
            (b"\x93NUMPY\x01\x00\xff\xff", "above the limit"),
            (b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f4'", "truncated"),
            (b"\x93NUMPY\x01\x00\x0a\x00{'x': 1} \n", "unexpected key `x`"),
            (b"\x93NUMPY\x01\x00\x0a\x00{}       \n", "needs the keys"),
        ];
        for (bytes, want) in cases {
            let err = decode_header(bytes).unwrap_err();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }
}

//! The element types of the safetensors spec and their sizes.

use std::fmt;
use std::str::FromStr;

/// An element type, named exactly as the safetensors header names it.
///
/// Sub-byte types (`F4`, `F6_E2M3`, `F6_E3M2`) are packed: a tensor's elements
/// form one little-endian bit stream, element `i` occupying bits
/// `[i * bits, (i + 1) * bits)`, and the element count times the bit width
/// must be a whole number of bytes.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    /// Boolean, one byte, 0 or 1.
    BOOL,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16: the top 16 bits of an f32.
    BF16,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
    /// Complex number: two f32, real then imaginary.
    C64,
    /// 8-bit float, 5 exponent and 2 mantissa bits, with infinities (OCP FP8).
    F8_E5M2,
    /// 8-bit float, 4 exponent and 3 mantissa bits, no infinities (OCP FP8 "E4M3FN").
    F8_E4M3,
    /// 8-bit power of two, `2^(e - 127)` (OCP MX scale), 0xFF is NaN.
    F8_E8M0,
    /// 8-bit float E4M3, bias 8, NaN at 0x80, no negative zero or infinities.
    F8_E4M3FNUZ,
    /// 8-bit float E5M2, bias 16, NaN at 0x80, no negative zero or infinities.
    F8_E5M2FNUZ,
    /// 4-bit float E2M1 (OCP MXFP4), packed two to a byte.
    F4,
    /// 6-bit float E2M3 (OCP MXFP6), packed four to three bytes.
    F6_E2M3,
    /// 6-bit float E3M2 (OCP MXFP6), packed four to three bytes.
    F6_E3M2,
}

impl Dtype {
    /// Every dtype, in the order of the safetensors spec's table.
    pub const ALL: [Dtype; 22] = [
        Dtype::BOOL,
        Dtype::U8,
        Dtype::I8,
        Dtype::I16,
        Dtype::U16,
        Dtype::I32,
        Dtype::U32,
        Dtype::I64,
        Dtype::U64,
        Dtype::F16,
        Dtype::BF16,
        Dtype::F32,
        Dtype::F64,
        Dtype::C64,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::F8_E8M0,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
        Dtype::F4,
        Dtype::F6_E2M3,
        Dtype::F6_E3M2,
    ];

    /// The name used in safetensors headers and JSON model files (`"F32"`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::BOOL => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::C64 => "C64",
            Dtype::F8_E5M2 => "F8_E5M2",
            Dtype::F8_E4M3 => "F8_E4M3",
            Dtype::F8_E8M0 => "F8_E8M0",
            Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            Dtype::F4 => "F4",
            Dtype::F6_E2M3 => "F6_E2M3",
            Dtype::F6_E3M2 => "F6_E3M2",
        }
    }

    /// Bits per element.
    pub fn bits(self) -> usize {
        match self {
            Dtype::F4 => 4,
            Dtype::F6_E2M3 | Dtype::F6_E3M2 => 6,
            Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => 8,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::I64 | Dtype::U64 | Dtype::F64 | Dtype::C64 => 64,
        }
    }

    /// The alignment, in bytes, an element needs to be read in place:
    /// its size for whole-byte types (4 for `C64`, a pair of f32), 1 for packed ones.
    pub fn alignment(self) -> usize {
        match self {
            Dtype::C64 => 4,
            _ => (self.bits() / 8).max(1),
        }
    }

    /// Bytes taken by `elements` values, or `None` when that overflows or,
    /// for packed sub-byte types, does not come out to whole bytes.
    pub fn byte_len(self, elements: usize) -> Option<usize> {
        let bits = elements.checked_mul(self.bits())?;
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// Whether the elements are floating-point numbers (real or complex).
    pub fn is_float(self) -> bool {
        !matches!(
            self,
            Dtype::BOOL
                | Dtype::U8
                | Dtype::I8
                | Dtype::I16
                | Dtype::U16
                | Dtype::I32
                | Dtype::U32
                | Dtype::I64
                | Dtype::U64
        )
    }
}

/// A stored value that is not a value of its dtype: the only such encodings
/// in the safetensors dtypes are BOOL bytes other than 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidValue {
    /// Index of the first invalid element.
    pub index: usize,
    /// The byte found there.
    pub byte: u8,
    /// How many elements are invalid.
    pub count: usize,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} invalid BOOL value{} (element {} holds byte 0x{:02x}; BOOL is 0 or 1)",
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.index,
            self.byte
        )
    }
}

impl Dtype {
    /// Checks that `bytes` hold only valid encodings of this dtype: `None`
    /// when every value is valid. Every bit pattern of the float and integer
    /// dtypes is a value (NaN included); a BOOL byte must be 0 or 1. One rule
    /// for `verify` and every conversion.
    ///
    /// ```
    /// use modeltool_format::Dtype;
    /// assert_eq!(Dtype::BOOL.first_invalid(&[0, 1, 1]), None);
    /// let bad = Dtype::BOOL.first_invalid(&[0, 2, 1, 255]).unwrap();
    /// assert_eq!((bad.index, bad.byte, bad.count), (1, 2, 2));
    /// assert_eq!(Dtype::U8.first_invalid(&[2, 255]), None);
    /// ```
    pub fn first_invalid(self, bytes: &[u8]) -> Option<InvalidValue> {
        if self != Dtype::BOOL {
            return None;
        }
        let index = bytes.iter().position(|&b| b > 1)?;
        let count = bytes[index..].iter().filter(|&&b| b > 1).count();
        Some(InvalidValue {
            index,
            byte: bytes[index],
            count,
        })
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a dtype name that the safetensors spec does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDtype(pub String);

impl fmt::Display for UnknownDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown dtype `{}`", self.0)
    }
}

impl std::error::Error for UnknownDtype {}

impl FromStr for Dtype {
    type Err = UnknownDtype;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dtype::ALL
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .ok_or_else(|| UnknownDtype(s.to_owned()))
    }
}

impl serde::Serialize for Dtype {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Dtype {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Dtype::ALL {
            assert_eq!(d.name().parse::<Dtype>(), Ok(d));
        }
        assert!("F128".parse::<Dtype>().is_err());
    }

    #[test]
    fn packed_sizes_must_be_whole_bytes() {
        assert_eq!(Dtype::F4.byte_len(4), Some(2));
        assert_eq!(Dtype::F4.byte_len(3), None);
        assert_eq!(Dtype::F6_E2M3.byte_len(4), Some(3));
        assert_eq!(Dtype::F6_E2M3.byte_len(2), None);
        assert_eq!(Dtype::F32.byte_len(usize::MAX), None);
        assert_eq!(Dtype::C64.byte_len(3), Some(24));
    }
}

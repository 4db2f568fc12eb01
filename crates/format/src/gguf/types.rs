//! The ggml tensor types: their ids, names, block sizes and bytes per block.

use std::fmt;

/// A ggml tensor type, as stored in a GGUF tensor info (a `u32` id).
///
/// Each type stores elements in blocks: [`block_size`](Self::block_size)
/// elements in [`type_size`](Self::type_size) bytes. Plain types have blocks
/// of one element. Ids that are not listed here (including the retired ids
/// 4, 5, 31-33 and 36-38) are unknown: [`GgmlType::from_id`] returns `None`
/// and the parser refuses the tensor rather than guessing.
///
/// ```
/// use modeltool_format::gguf::GgmlType;
///
/// let t = GgmlType::from_id(12).expect("Q4_K is id 12");
/// assert_eq!((t.name(), t.block_size(), t.type_size()), ("Q4_K", 256, 144));
/// assert_eq!(GgmlType::from_id(4), None);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types, reason = "the names ggml and llama.cpp use")]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 4-bit, 32 per block, one f16 scale.
    Q4_0,
    /// 4-bit, 32 per block, f16 scale and minimum.
    Q4_1,
    /// 5-bit, 32 per block, one f16 scale.
    Q5_0,
    /// 5-bit, 32 per block, f16 scale and minimum.
    Q5_1,
    /// 8-bit, 32 per block, one f16 scale.
    Q8_0,
    /// 8-bit, 32 per block, f32 scale and sum (an intermediate type).
    Q8_1,
    /// 2-bit k-quant, 256 per block.
    Q2_K,
    /// 3-bit k-quant, 256 per block.
    Q3_K,
    /// 4-bit k-quant, 256 per block.
    Q4_K,
    /// 5-bit k-quant, 256 per block.
    Q5_K,
    /// 6-bit k-quant, 256 per block.
    Q6_K,
    /// 8-bit k-quant, 256 per block (an intermediate type).
    Q8_K,
    /// 2.06-bit importance quant.
    IQ2_XXS,
    /// 2.31-bit importance quant.
    IQ2_XS,
    /// 3.06-bit importance quant.
    IQ3_XXS,
    /// 1.56-bit importance quant.
    IQ1_S,
    /// 4.5-bit non-linear quant, 32 per block.
    IQ4_NL,
    /// 3.44-bit importance quant.
    IQ3_S,
    /// 2.5-bit importance quant.
    IQ2_S,
    /// 4.25-bit non-linear quant, 256 per block.
    IQ4_XS,
    /// 8-bit signed integer.
    I8,
    /// 16-bit signed integer.
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 64-bit IEEE float.
    F64,
    /// 1.75-bit importance quant.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// Ternary, 1.69 bits per weight.
    TQ1_0,
    /// Ternary, 2.06 bits per weight.
    TQ2_0,
    /// OCP microscaling FP4 (e2m1 values, e8m0 scale), 32 per block.
    MXFP4,
    /// NVIDIA FP4 (e2m1 values, ue4m3 scales), 64 per block.
    NVFP4,
    /// 1-bit, 128 per block, one f16 scale.
    Q1_0,
}

/// (type, id, name, block size, bytes per block).
const TABLE: [(GgmlType, u32, &str, u32, u32); 34] = {
    use GgmlType::*;
    const K: u32 = 256;
    [
        (F32, 0, "F32", 1, 4),
        (F16, 1, "F16", 1, 2),
        (Q4_0, 2, "Q4_0", 32, 2 + 16),
        (Q4_1, 3, "Q4_1", 32, 2 + 2 + 16),
        (Q5_0, 6, "Q5_0", 32, 2 + 4 + 16),
        (Q5_1, 7, "Q5_1", 32, 2 + 2 + 4 + 16),
        (Q8_0, 8, "Q8_0", 32, 2 + 32),
        (Q8_1, 9, "Q8_1", 32, 4 + 4 + 32),
        (Q2_K, 10, "Q2_K", K, 2 + 2 + K / 16 + K / 4),
        (Q3_K, 11, "Q3_K", K, 2 + K / 4 + K / 8 + 12),
        (Q4_K, 12, "Q4_K", K, 2 + 2 + K / 2 + 12),
        (Q5_K, 13, "Q5_K", K, 2 + 2 + K / 2 + K / 8 + 12),
        (Q6_K, 14, "Q6_K", K, 2 + K / 2 + K / 4 + K / 16),
        (Q8_K, 15, "Q8_K", K, 4 + K + K / 8),
        (IQ2_XXS, 16, "IQ2_XXS", K, 2 + K / 4),
        (IQ2_XS, 17, "IQ2_XS", K, 2 + K / 4 + K / 32),
        (IQ3_XXS, 18, "IQ3_XXS", K, 2 + K / 4 + K / 8),
        (IQ1_S, 19, "IQ1_S", K, 2 + K / 8 + K / 16),
        (IQ4_NL, 20, "IQ4_NL", 32, 2 + 16),
        (IQ3_S, 21, "IQ3_S", K, 2 + K / 4 + K / 8 + K / 32 + 4),
        (IQ2_S, 22, "IQ2_S", K, 2 + K / 4 + K / 16),
        (IQ4_XS, 23, "IQ4_XS", K, 2 + 2 + K / 2 + K / 64),
        (I8, 24, "I8", 1, 1),
        (I16, 25, "I16", 1, 2),
        (I32, 26, "I32", 1, 4),
        (I64, 27, "I64", 1, 8),
        (F64, 28, "F64", 1, 8),
        (IQ1_M, 29, "IQ1_M", K, K / 8 + K / 16 + K / 32),
        (BF16, 30, "BF16", 1, 2),
        (TQ1_0, 34, "TQ1_0", K, 2 + 4 * 13),
        (TQ2_0, 35, "TQ2_0", K, 2 + 64),
        (MXFP4, 39, "MXFP4", 32, 1 + 16),
        (NVFP4, 40, "NVFP4", 64, 4 + 32),
        (Q1_0, 41, "Q1_0", 128, 2 + 16),
    ]
};

impl GgmlType {
    /// Every known type, in id order.
    pub const ALL: [GgmlType; 34] = {
        let mut all = [GgmlType::F32; 34];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> (GgmlType, u32, &'static str, u32, u32) {
        // The table lists every variant in declaration order.
        TABLE[self as usize]
    }

    /// The type with this id, or `None` for an id ggml does not define.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    /// The type named `name` as ggml spells it (`"Q4_K"`), case-insensitive.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TABLE
            .iter()
            .find(|row| row.2.eq_ignore_ascii_case(name))
            .map(|row| row.0)
    }

    /// The id stored in the file.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The name ggml gives the type, e.g. `"Q4_K"`.
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block (1 for plain types).
    pub fn block_size(self) -> u32 {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> u32 {
        self.row().4
    }

    /// Whether elements are stored one per block (F32, F16, BF16, F64, I8..I64).
    pub fn is_plain(self) -> bool {
        self.block_size() == 1
    }

    /// The safetensors dtype whose little-endian bytes are this type's
    /// bytes, for the plain types (F32, F16, BF16, F64, I8..I64): a
    /// converter copies these tensors as they are and dequantizes the rest.
    ///
    /// ```
    /// use modeltool_format::Dtype;
    /// use modeltool_format::gguf::GgmlType;
    /// assert_eq!(GgmlType::BF16.plain_dtype(), Some(Dtype::BF16));
    /// assert_eq!(GgmlType::Q4_K.plain_dtype(), None);
    /// ```
    pub fn plain_dtype(self) -> Option<crate::Dtype> {
        use crate::Dtype;
        Some(match self {
            GgmlType::F32 => Dtype::F32,
            GgmlType::F16 => Dtype::F16,
            GgmlType::BF16 => Dtype::BF16,
            GgmlType::F64 => Dtype::F64,
            GgmlType::I8 => Dtype::I8,
            GgmlType::I16 => Dtype::I16,
            GgmlType::I32 => Dtype::I32,
            GgmlType::I64 => Dtype::I64,
            _ => return None,
        })
    }

    /// The bytes `elements` elements take, or `None` if `elements` is not a
    /// whole number of blocks or the size overflows.
    ///
    /// ```
    /// use modeltool_format::gguf::GgmlType;
    /// assert_eq!(GgmlType::Q8_0.byte_size(64), Some(68));
    /// assert_eq!(GgmlType::Q8_0.byte_size(33), None);
    /// ```
    pub fn byte_size(self, elements: u64) -> Option<u64> {
        let block = u64::from(self.block_size());
        if elements % block != 0 {
            return None;
        }
        (elements / block).checked_mul(u64::from(self.type_size()))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_follow_declaration_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i, "{}", row.2);
            assert_eq!(GgmlType::from_id(row.1), Some(row.0));
            assert_eq!(GgmlType::from_name(row.2), Some(row.0));
        }
    }

    #[test]
    fn plain_types_map_to_a_dtype_of_the_same_width() {
        for t in GgmlType::ALL {
            match t.plain_dtype() {
                Some(d) => assert_eq!(d.bits(), 8 * t.type_size() as usize, "{t}"),
                None => assert!(!t.is_plain(), "{t}"),
            }
        }
    }
}

//! Quantization from f32: F32, F16, BF16 and Q8_0, bit for bit what
//! `gguf.quants.quantize` produces.

use half::f16;

use super::GgmlType;
use super::error::{GgufError, Result};

/// Encodes `values` as `ggml_type` (F32, F16, BF16 or Q8_0), little-endian.
///
/// Q8_0 needs a whole number of 32-value blocks: per block the scale is the
/// largest magnitude over 127 (stored as f16), each value is rounded half
/// away from zero after multiplying by the scale's reciprocal, as ggml's
/// reference quantizer does. F16 and BF16 round to nearest even; BF16 keeps
/// NaN a quiet NaN.
///
/// ```
/// use modeltool_format::gguf::{GgmlType, dequantize_to_vec, quantize};
/// let values: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
/// let q = quantize(GgmlType::Q8_0, &values)?;
/// assert_eq!(q.len(), 34);
/// let back = dequantize_to_vec(GgmlType::Q8_0, &q)?;
/// assert!((back[0] + 16.0).abs() < 0.1);
/// # Ok::<(), modeltool_format::gguf::GgufError>(())
/// ```
pub fn quantize(ggml_type: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    match ggml_type {
        GgmlType::F32 => Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        GgmlType::F16 => Ok(values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect()),
        GgmlType::BF16 => Ok(values
            .iter()
            .flat_map(|&v| bf16_bits(v).to_le_bytes())
            .collect()),
        GgmlType::Q8_0 => {
            if values.len() % 32 != 0 {
                return Err(GgufError::LengthMismatch {
                    ggml_type,
                    expected: (values.len() / 32 * 32 + 32) as u64,
                    found: values.len() as u64,
                    unit: "elements (a multiple of 32)",
                });
            }
            let mut out = Vec::with_capacity(values.len() / 32 * 34);
            for block in values.chunks_exact(32) {
                q8_0_block(block, &mut out);
            }
            Ok(out)
        }
        _ => Err(GgufError::CannotQuantize { ggml_type }),
    }
}

/// ggml_compute_fp32_to_bf16: NaN made quiet, otherwise round to nearest even.
fn bf16_bits(v: f32) -> u16 {
    let n = v.to_bits();
    if n & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((n & 0xFFFF_0000) >> 16) as u16 | 0x40;
    }
    ((u64::from(n) + 0x7FFF + u64::from((n >> 16) & 1)) >> 16) as u16
}

fn q8_0_block(block: &[f32], out: &mut Vec<u8>) {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    // f32::round rounds half away from zero, as ggml's roundf does.
    out.extend(block.iter().map(|&v| (v * id).round() as i8 as u8));
}

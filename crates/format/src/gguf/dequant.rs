//! Dequantization of ggml blocks to f32, bit for bit what the `gguf` Python
//! package's `gguf.quants.dequantize` computes (same operations in the same
//! order, each rounded to f32).

use half::f16;
use rayon::prelude::*;

use super::GgmlType;
use super::error::{GgufError, Result};
use super::iq_tables::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS,
};

/// Whether [`dequantize`] decodes `ggml_type`.
///
/// ```
/// use modeltool_format::gguf::{GgmlType, can_dequantize};
/// assert!(can_dequantize(GgmlType::Q4_K));
/// assert!(!can_dequantize(GgmlType::I32)); // copied as an integer, not dequantized
/// ```
pub fn can_dequantize(ggml_type: GgmlType) -> bool {
    why_not(ggml_type).is_none()
}

fn why_not(t: GgmlType) -> Option<&'static str> {
    use GgmlType::*;
    match t {
        F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
        | TQ1_0 | TQ2_0 | IQ4_NL | IQ4_XS | MXFP4 | NVFP4 | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS
        | IQ3_S | IQ1_S | IQ1_M => None,
        I8 | I16 | I32 | I64 | F64 => {
            Some("it is a plain type, copied with its own dtype rather than turned into f32")
        }
        Q8_1 | Q8_K => {
            Some("it is an intermediate type of ggml's matrix products, not a storage type")
        }
        Q1_0 => Some("the reference implementation has no decoder for it"),
    }
}

/// Dequantizes `data`, whole blocks of `ggml_type`, into `out`, which must
/// hold exactly the blocks' elements.
///
/// Decodes F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, TQ1_0,
/// TQ2_0, IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL,
/// IQ4_XS, MXFP4 and NVFP4, little-endian, bit-exact with
/// `gguf.quants.dequantize`. Other types are refused with
/// [`GgufError::CannotDequantize`], never guessed. Work is spread over
/// threads in runs of blocks.
///
/// ```
/// use modeltool_format::gguf::{GgmlType, dequantize};
/// // One Q8_0 block: scale 0.5 (f16 0x3800), then 32 signed bytes.
/// let mut block = vec![0x00, 0x38];
/// block.extend((0..32).map(|i| i as u8));
/// let mut out = [0f32; 32];
/// dequantize(GgmlType::Q8_0, &block, &mut out)?;
/// assert_eq!(out[3], 1.5);
/// # Ok::<(), modeltool_format::gguf::GgufError>(())
/// ```
pub fn dequantize(ggml_type: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    if let Some(why) = why_not(ggml_type) {
        return Err(GgufError::CannotDequantize { ggml_type, why });
    }
    let tsize = ggml_type.type_size() as usize;
    let bsize = ggml_type.block_size() as usize;
    if data.len() % tsize != 0 {
        return Err(GgufError::LengthMismatch {
            ggml_type,
            expected: (data.len() / tsize * tsize) as u64,
            found: data.len() as u64,
            unit: "bytes (whole blocks)",
        });
    }
    let elements = data.len() / tsize * bsize;
    if out.len() != elements {
        return Err(GgufError::LengthMismatch {
            ggml_type,
            expected: elements as u64,
            found: out.len() as u64,
            unit: "output elements",
        });
    }
    use GgmlType::*;
    match ggml_type {
        F32 => blocks(data, out, 4, 1, |b, o| {
            o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }),
        F16 => blocks(data, out, 2, 1, |b, o| o[0] = half(b, 0)),
        BF16 => blocks(data, out, 2, 1, |b, o| {
            o[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
        }),
        Q4_0 => blocks(data, out, tsize, bsize, q4_0),
        Q4_1 => blocks(data, out, tsize, bsize, q4_1),
        Q5_0 => blocks(data, out, tsize, bsize, q5_0),
        Q5_1 => blocks(data, out, tsize, bsize, q5_1),
        Q8_0 => blocks(data, out, tsize, bsize, q8_0),
        Q2_K => blocks(data, out, tsize, bsize, q2_k),
        Q3_K => blocks(data, out, tsize, bsize, q3_k),
        Q4_K => blocks(data, out, tsize, bsize, q4_k),
        Q5_K => blocks(data, out, tsize, bsize, q5_k),
        Q6_K => blocks(data, out, tsize, bsize, q6_k),
        TQ1_0 => blocks(data, out, tsize, bsize, tq1_0),
        TQ2_0 => blocks(data, out, tsize, bsize, tq2_0),
        IQ4_NL => blocks(data, out, tsize, bsize, iq4_nl),
        IQ4_XS => blocks(data, out, tsize, bsize, iq4_xs),
        MXFP4 => blocks(data, out, tsize, bsize, mxfp4),
        NVFP4 => blocks(data, out, tsize, bsize, nvfp4),
        IQ2_XXS => blocks(data, out, tsize, bsize, iq2_xxs),
        IQ2_XS => blocks(data, out, tsize, bsize, iq2_xs),
        IQ2_S => blocks(data, out, tsize, bsize, iq2_s),
        IQ3_XXS => blocks(data, out, tsize, bsize, iq3_xxs),
        IQ3_S => blocks(data, out, tsize, bsize, iq3_s),
        IQ1_S => blocks(data, out, tsize, bsize, iq1_s),
        IQ1_M => blocks(data, out, tsize, bsize, iq1_m),
        _ => unreachable!("why_not refused every other type"),
    }
    Ok(())
}

/// [`dequantize`] into a new vector.
pub fn dequantize_to_vec(ggml_type: GgmlType, data: &[u8]) -> Result<Vec<f32>> {
    let tsize = ggml_type.type_size() as usize;
    let n = data.len() / tsize * ggml_type.block_size() as usize;
    let mut out = vec![0f32; n];
    dequantize(ggml_type, data, &mut out)?;
    Ok(out)
}

/// Blocks per unit of parallel work: large enough that scheduling costs
/// nothing next to decoding, small enough to spread a 4096-wide row set.
const BLOCKS_PER_TASK: usize = 2048;

/// Runs `f` on every (block, output) pair, in parallel over runs of blocks.
/// The only place this module uses threads.
fn blocks<F>(data: &[u8], out: &mut [f32], tsize: usize, bsize: usize, f: F)
where
    F: Fn(&[u8], &mut [f32]) + Sync,
{
    data.par_chunks(tsize * BLOCKS_PER_TASK)
        .zip(out.par_chunks_mut(bsize * BLOCKS_PER_TASK))
        .for_each(|(d, o)| {
            for (b, ob) in d.chunks_exact(tsize).zip(o.chunks_exact_mut(bsize)) {
                f(b, ob);
            }
        });
}

#[inline(always)]
fn half(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        o[j] = d * f32::from((qs[j] & 0x0F) as i8 - 8);
        o[j + 16] = d * f32::from((qs[j] >> 4) as i8 - 8);
    }
}

fn q4_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (half(b, 0), half(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        o[j] = d * f32::from(qs[j] & 0x0F) + m;
        o[j + 16] = d * f32::from(qs[j] >> 4) + m;
    }
}

fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) | (((qh >> j) & 1) as u8) << 4;
        let hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
        o[j] = d * f32::from(lo as i8 - 16);
        o[j + 16] = d * f32::from(hi as i8 - 16);
    }
}

fn q5_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (half(b, 0), half(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) | (((qh >> j) & 1) as u8) << 4;
        let hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
        o[j] = d * f32::from(lo) + m;
        o[j + 16] = d * f32::from(hi) + m;
    }
}

fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    for (x, &q) in o.iter_mut().zip(&b[2..34]) {
        *x = f32::from(q as i8) * d;
    }
}

fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (half(b, 80), half(b, 82));
    for (sub, chunk) in o.chunks_exact_mut(16).enumerate() {
        let dl = d * f32::from(scales[sub] & 0x0F);
        let ml = dmin * f32::from(scales[sub] >> 4);
        for (k, x) in chunk.iter_mut().enumerate() {
            let idx = sub * 16 + k;
            let (g, s, j) = (idx / 128, (idx % 128) / 32, idx % 32);
            let q = (qs[g * 32 + j] >> (2 * s)) & 3;
            *x = dl * f32::from(q) - ml;
        }
    }
}

fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = half(b, 108);
    for (sub, chunk) in o.chunks_exact_mut(16).enumerate() {
        let l = if sub < 8 {
            sc[sub] & 0x0F
        } else {
            sc[sub - 8] >> 4
        };
        let h = (sc[8 + sub % 4] >> (2 * (sub / 4))) & 3;
        let dl = d * f32::from((l | h << 4) as i8 - 32);
        for (k, x) in chunk.iter_mut().enumerate() {
            let idx = sub * 16 + k;
            let (g, s, j) = (idx / 128, (idx % 128) / 32, idx % 32);
            let ql = ((qs[g * 32 + j] >> (2 * s)) & 3) as i8;
            let hbit = (hmask[idx % 32] >> (idx / 32)) & 1;
            let q = ql - (((hbit ^ 1) << 2) as i8);
            *x = dl * f32::from(q);
        }
    }
}

/// The eight 6-bit scales and minimums of a Q4_K or Q5_K block.
#[inline(always)]
fn k_scale_min(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for i in 0..4 {
        sc[i] = s[i] & 63;
        m[i] = s[i + 4] & 63;
        sc[i + 4] = (s[i + 8] & 0x0F) | ((s[i] >> 2) & 0x30);
        m[i + 4] = (s[i + 8] >> 4) | ((s[i + 4] >> 2) & 0x30);
    }
    (sc, m)
}

fn q4_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (half(b, 0), half(b, 2));
    let (sc, m) = k_scale_min(&b[4..16]);
    let qs = &b[16..144];
    for (sub, chunk) in o.chunks_exact_mut(32).enumerate() {
        let dl = d * f32::from(sc[sub]);
        let ml = dmin * f32::from(m[sub]);
        let (g, s) = (sub / 2, sub % 2);
        let bytes = &qs[g * 32..g * 32 + 32];
        for (x, &q) in chunk.iter_mut().zip(bytes) {
            *x = dl * f32::from((q >> (4 * s)) & 0x0F) - ml;
        }
    }
}

fn q5_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (half(b, 0), half(b, 2));
    let (sc, m) = k_scale_min(&b[4..16]);
    let (qh, qs) = (&b[16..48], &b[48..176]);
    for (sub, chunk) in o.chunks_exact_mut(32).enumerate() {
        let dl = d * f32::from(sc[sub]);
        let ml = dmin * f32::from(m[sub]);
        let (g, s) = (sub / 2, sub % 2);
        let bytes = &qs[g * 32..g * 32 + 32];
        for (j, x) in chunk.iter_mut().enumerate() {
            let q = ((bytes[j] >> (4 * s)) & 0x0F) | ((qh[j] >> sub) & 1) << 4;
            *x = dl * f32::from(q) - ml;
        }
    }
}

fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = half(b, 208);
    for (sub, chunk) in o.chunks_exact_mut(16).enumerate() {
        let dl = d * f32::from(scales[sub] as i8);
        for (k, x) in chunk.iter_mut().enumerate() {
            let idx = sub * 16 + k;
            let g = idx / 128;
            let lo = (ql[g * 64 + idx % 64] >> (4 * ((idx % 128) / 64))) & 0x0F;
            let hi = (qh[g * 32 + idx % 32] >> (2 * ((idx % 128) / 32))) & 3;
            *x = dl * f32::from((lo | hi << 4) as i8 - 32);
        }
    }
}

fn tq1_0(b: &[u8], o: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let (qs, qh) = (&b[0..48], &b[48..52]);
    let d = half(b, 52);
    let trit = |v: u8, p: usize| -> f32 {
        let t = v.wrapping_mul(POW3[p]);
        f32::from(((u16::from(t) * 3) >> 8) as i8 - 1)
    };
    for p in 0..5 {
        for j in 0..32 {
            o[p * 32 + j] = d * trit(qs[j], p);
        }
        for j in 0..16 {
            o[160 + p * 16 + j] = d * trit(qs[32 + j], p);
        }
    }
    for p in 0..4 {
        for j in 0..4 {
            o[240 + p * 4 + j] = d * trit(qh[j], p);
        }
    }
}

fn tq2_0(b: &[u8], o: &mut [f32]) {
    let qs = &b[0..64];
    let d = half(b, 64);
    for (idx, x) in o.iter_mut().enumerate() {
        let (g, s, j) = (idx / 128, (idx % 128) / 32, idx % 32);
        let q = ((qs[g * 32 + j] >> (2 * s)) & 3) as i8 - 1;
        *x = d * f32::from(q);
    }
}

/// The 16 values of a 4-bit non-linear quant (IQ4_NL, IQ4_XS).
const IQ4_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

fn iq4_nl(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        o[j] = d * f32::from(IQ4_VALUES[usize::from(qs[j] & 0x0F)]);
        o[j + 16] = d * f32::from(IQ4_VALUES[usize::from(qs[j] >> 4)]);
    }
}

fn iq4_xs(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let sh = u16::from_le_bytes([b[2], b[3]]);
    let (sl, qs) = (&b[4..8], &b[8..136]);
    for (sub, chunk) in o.chunks_exact_mut(32).enumerate() {
        let l = (sl[sub / 2] >> (4 * (sub % 2))) & 0x0F;
        let h = ((sh >> (2 * sub)) & 3) as u8;
        let dl = d * f32::from((l | h << 4) as i8 - 32);
        let bytes = &qs[sub * 16..sub * 16 + 16];
        for j in 0..16 {
            chunk[j] = dl * f32::from(IQ4_VALUES[usize::from(bytes[j] & 0x0F)]);
            chunk[j + 16] = dl * f32::from(IQ4_VALUES[usize::from(bytes[j] >> 4)]);
        }
    }
}

/// e2m1 values, doubled (the scale is halved to match).
const FP4_VALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

fn mxfp4(b: &[u8], o: &mut [f32]) {
    // ggml_e8m0_to_fp32_half: 2^(e - 128), with the two smallest as subnormals.
    let e = u32::from(b[0]);
    let d = f32::from_bits(if e < 2 {
        0x0020_0000 << e
    } else {
        (e - 1) << 23
    });
    let qs = &b[1..17];
    for j in 0..16 {
        o[j] = d * f32::from(FP4_VALUES[usize::from(qs[j] & 0x0F)]);
        o[j + 16] = d * f32::from(FP4_VALUES[usize::from(qs[j] >> 4)]);
    }
}

/// An unsigned e4m3 scale (bias 7), halved to match the doubled values.
fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7F {
        return 0.0;
    }
    let exp = i32::from(x >> 3) & 0x0F;
    let man = f32::from(x & 7);
    let raw = if exp == 0 {
        man * (1.0 / 512.0)
    } else {
        (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    };
    raw * 0.5
}

fn nvfp4(b: &[u8], o: &mut [f32]) {
    let qs = &b[4..36];
    for (k, chunk) in o.chunks_exact_mut(16).enumerate() {
        let d = ue4m3_half(b[k]);
        let bytes = &qs[k * 8..k * 8 + 8];
        for j in 0..8 {
            chunk[j] = d * f32::from(FP4_VALUES[usize::from(bytes[j] & 0x0F)]);
            chunk[j + 8] = d * f32::from(FP4_VALUES[usize::from(bytes[j] >> 4)]);
        }
    }
}

// The IQ types: each index picks a row of a codebook (iq_tables.rs); a
// scale per group multiplies it, and for IQ2/IQ3 a sign pattern negates
// some of its elements. The operations and their order are the `gguf`
// package's (`db * grid * signs`, `dl * (grid + delta)`), each in f32.

#[inline(always)]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `x`, negated where bit `j` of `signs` is set.
#[inline(always)]
fn signed(x: f32, signs: u8, j: usize) -> f32 {
    if (signs >> j) & 1 == 0 { x } else { -x }
}

fn iq2_xxs(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    for g in 0..8 {
        let (aux0, aux1) = (u32_at(b, 2 + 8 * g), u32_at(b, 6 + 8 * g));
        let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
        for l in 0..4 {
            let grid = &IQ2XXS_GRID[((aux0 >> (8 * l)) & 0xFF) as usize];
            let signs = KSIGNS[((aux1 >> (7 * l)) & 0x7F) as usize];
            for j in 0..8 {
                o[g * 32 + l * 8 + j] = signed(db * f32::from(grid[j]), signs, j);
            }
        }
    }
}

fn iq2_xs(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let scales = &b[66..74];
    for s in 0..16 {
        let sc = (scales[s / 2] >> (4 * (s % 2))) & 0x0F;
        let db = d * (0.5 + f32::from(sc)) * 0.25;
        for k in 0..2 {
            let q = u16_at(b, 2 + 2 * (s * 2 + k));
            let grid = &IQ2XS_GRID[usize::from(q & 511)];
            let signs = KSIGNS[usize::from(q >> 9)];
            for j in 0..8 {
                o[s * 16 + k * 8 + j] = signed(db * f32::from(grid[j]), signs, j);
            }
        }
    }
}

fn iq2_s(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let (qs, signs, qh, scales) = (&b[2..34], &b[34..66], &b[66..74], &b[74..82]);
    for s in 0..16 {
        let sc = (scales[s / 2] >> (4 * (s % 2))) & 0x0F;
        let db = d * (0.5 + f32::from(sc)) * 0.25;
        for k in 0..2 {
            let i = s * 2 + k;
            let hi = (qh[i / 4] >> (2 * (i % 4))) & 3;
            let grid = &IQ2S_GRID[usize::from(qs[i]) | usize::from(hi) << 8];
            for j in 0..8 {
                o[i * 8 + j] = signed(db * f32::from(grid[j]), signs[i], j);
            }
        }
    }
}

fn iq3_xxs(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let qs = &b[2..66];
    for g in 0..8 {
        let aux = u32_at(b, 66 + 4 * g);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for l in 0..4 {
            let signs = KSIGNS[((aux >> (7 * l)) & 0x7F) as usize];
            for j in 0..8 {
                let v = g * 32 + l * 8 + j;
                let x = f32::from(IQ3XXS_GRID[usize::from(qs[v / 4])][v % 4]);
                o[v] = signed(db * x, signs, j);
            }
        }
    }
}

fn iq3_s(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let (qs, qh, signs, scales) = (&b[2..66], &b[66..74], &b[74..106], &b[106..110]);
    for g in 0..8 {
        let sc = (scales[g / 2] >> (4 * (g % 2))) & 0x0F;
        let db = d * f32::from(1 + 2 * sc);
        for v in g * 32..g * 32 + 32 {
            let i = v / 4;
            let hi = (qh[i / 8] >> (i % 8)) & 1;
            let x = f32::from(IQ3S_GRID[usize::from(qs[i]) | usize::from(hi) << 8][v % 4]);
            o[v] = signed(db * x, signs[v / 8], v % 8);
        }
    }
}

/// What IQ1_S and IQ1_M add to each codebook value, before the sign of
/// the group is applied.
const IQ1_DELTA: f32 = 0.125;

fn iq1_s(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    let qs = &b[2..34];
    for g in 0..8 {
        let qh = u16_at(b, 34 + 2 * g);
        let dl = d * f32::from(2 * ((qh >> 12) & 7) + 1);
        let delta = if qh & 0x8000 == 0 {
            IQ1_DELTA
        } else {
            -IQ1_DELTA
        };
        for l in 0..4 {
            let i = g * 4 + l;
            let hi = (qh >> (3 * l)) & 7;
            let grid = &IQ1S_GRID[usize::from(qs[i]) | usize::from(hi) << 8];
            for j in 0..8 {
                o[i * 8 + j] = dl * (f32::from(grid[j]) + delta);
            }
        }
    }
}

fn iq1_m(b: &[u8], o: &mut [f32]) {
    let (qs, qh) = (&b[0..32], &b[32..48]);
    let sc = [u16_at(b, 48), u16_at(b, 50), u16_at(b, 52), u16_at(b, 54)];
    // The f16 scale is the top four bits of each of the four scale words.
    let d = f16::from_bits(
        (sc[0] & 0xF000) >> 12 | (sc[1] & 0xF000) >> 8 | (sc[2] & 0xF000) >> 4 | (sc[3] & 0xF000),
    )
    .to_f32();
    for s in 0..16 {
        let dl = d * f32::from(2 * ((sc[s / 4] >> (3 * (s % 4))) & 7) + 1);
        for k in 0..2 {
            let i = s * 2 + k;
            let nib = (qh[i / 2] >> (4 * (i % 2))) & 0x0F;
            let delta = if nib & 0x08 == 0 {
                IQ1_DELTA
            } else {
                -IQ1_DELTA
            };
            let grid = &IQ1S_GRID[usize::from(qs[i]) | usize::from(nib & 7) << 8];
            for j in 0..8 {
                o[i * 8 + j] = dl * (f32::from(grid[j]) + delta);
            }
        }
    }
}

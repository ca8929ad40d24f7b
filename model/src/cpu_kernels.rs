//! Fused f32 CPU kernels for the decoder's hot paths: attention that never materialises the `[B,H,Sq,Sk]`
//! score tensor, RoPE written straight into the layout attention reads, and the MLP's `up * silu(gate)`.
//!
//! Only f32 tensors on the CPU take these paths ([`fused_applies`]); every other device or dtype keeps the
//! candle ops. The results match the candle path to f32 rounding (different summation orders, and
//! [`exp_fast`] instead of libm's `expf`).

use candle_core::{CpuStorage, DType, Device, Layout, Storage, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Whether the fused kernels apply: every tensor is f32 on the CPU and none needs a gradient (the kernels
/// have no backward; see [`crate::grad::needs_grad`]).
pub(crate) fn fused_applies(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32)
        && !crate::grad::needs_grad(ts)
}

/// `e^x` in f32 without libm, branch-free so that loops over it vectorise.
///
/// Cody–Waite range reduction `x = n ln2 + r`, `|r| <= ln2/2`, then the Cephes `expf` minimax polynomial
/// for `e^r` and an exponent-bit `2^n`. Measured against `f32::exp` (see the tests): at most 2 ulp for
/// `x` in `[-87.33, 88.37]`. Below `-87.33` (where `e^x < 2^-126`, i.e. subnormal) and for `-inf` it
/// returns 0 — the softmax only feeds it `x - max <= 0`, where such terms cannot move a sum `>= 1`.
/// Above `88.37` it saturates at about `2.4e38` instead of overflowing.
#[inline(always)]
pub(crate) fn exp_fast(x: f32) -> f32 {
    const LO: f32 = -87.336_55; // ln(2^-126)
    const HI: f32 = 88.376_26; // 127.5 ln 2: keeps n <= 127
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // exactly representable head of ln 2
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - LN2_HI
                                         // 1.5·2^23: adding it rounds to an integer and leaves that integer in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI;
    let r = r - n * LN2_LO;
    let mut p = 1.987_569_2e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    // 2^n from the integer sitting in t's mantissa.
    let two_n = f32::from_bits((t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127)) << 23);
    if x < LO {
        0.0
    } else {
        y * two_n
    }
}

/// Lane count of the hand-unrolled reductions: one AVX register of f32, two SSE ones.
const LANES: usize = 8;

/// In place `row = exp(row + mask - max)`; returns the sum of the new row (the softmax denominator).
#[inline(always)]
fn exp_row_body(row: &mut [f32], mask: Option<&[f32]>) -> f32 {
    if let Some(m) = mask {
        let n = row.len();
        for (x, m) in row.iter_mut().zip(&m[..n]) {
            *x += *m;
        }
    }
    // Max with LANES independent accumulators so it vectorises (f32::max would not).
    let mut mx = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            mx[i] = if c[i] > mx[i] { c[i] } else { mx[i] };
        }
    }
    let mut max = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for m in mx {
        max = if m > max { m } else { max };
    }
    // Separate simple passes: the loop vectoriser handles these, not the fused exp-and-sum loop.
    for x in row.iter_mut() {
        *x = exp_fast(*x - max);
    }
    let mut sum = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            sum[i] += c[i];
        }
    }
    chunks.remainder().iter().sum::<f32>() + sum.iter().sum::<f32>()
}

/// `out = up * silu(gate) = up * gate / (1 + e^-gate)`, the reference's operation order.
#[inline(always)]
fn silu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = u * (g / (1.0 + exp_fast(-g)));
    }
}

/// Compiles `$body` twice — for the build's baseline target and with AVX2+FMA enabled — and picks the
/// second at run time where the CPU has it (the crate is not built with `target-cpu=native`).
macro_rules! simd_dispatch {
    ($name:ident, $avx:ident, $body:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }

        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the enabled features.
                return unsafe { $avx($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

simd_dispatch!(exp_row, exp_row_avx2, exp_row_body, (row: &mut [f32], mask: Option<&[f32]>) -> f32);
simd_dispatch!(silu_mul_rows, silu_mul_avx2, silu_mul_body, (gate: &[f32], up: &[f32], out: &mut [f32]) -> ());

/// The f32 slice, start offset and strides of a CPU f32 tensor; the guard keeps the storage borrowed.
struct F32View<'a> {
    guard: candle_core::StorageRef<'a>,
    layout: &'a Layout,
}

impl<'a> F32View<'a> {
    fn new(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
            return Err(Error::Input(format!(
                "fused CPU kernel needs f32 CPU tensors, got {:?} on {:?}",
                t.dtype(),
                t.device().location()
            )));
        }
        if layout.stride().last() != Some(&1) {
            return Err(Error::Input(
                "fused CPU kernel needs a contiguous last dimension".into(),
            ));
        }
        Ok(Self { guard, layout })
    }

    fn data(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.layout.start_offset()..],
            _ => unreachable!("checked in new"),
        }
    }

    /// The data (from the start offset) with the strides of the first three dimensions, as plain `Sync`
    /// values for the parallel loops.
    fn strided(&self) -> Strided<'_> {
        let st = self.layout.stride();
        Strided {
            data: self.data(),
            s: [st[0], st[1], st[2]],
        }
    }
}

/// A 4-d f32 tensor's data and outer strides (the last dimension is contiguous).
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    s: [usize; 3],
}

impl Strided<'_> {
    /// The data from index `(i0, i1, i2, 0)` on.
    fn at(&self, i0: usize, i1: usize, i2: usize) -> &[f32] {
        &self.data[i0 * self.s[0] + i1 * self.s[1] + i2 * self.s[2]..]
    }
}

/// `q` and `k` of a fused `qkv` projection `[B,S,3·H·D]` with RoPE applied, each `[B,S,H,D]` contiguous
/// (so that `transpose(1,2)` gives the `[B,H,S,D]` view attention wants without a copy). `cos`/`sin` are
/// `[B,S,D/2]`; the rotation is candle's `rope` (rotate-half) with the same operation order.
pub(crate) fn rope_qk(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
    head_dim: usize,
) -> Result<(Tensor, Tensor)> {
    let (b, s, c3) = qkv.dims3()?;
    let (c, half) = (heads * head_dim, head_dim / 2);
    if c3 != 3 * c || cos.dims() != [b, s, half] || sin.dims() != [b, s, half] {
        return Err(Error::Input(format!(
            "rope_qk: qkv {:?}, cos {:?}, sin {:?} for {heads} heads of {head_dim}",
            qkv.dims(),
            cos.dims(),
            sin.dims()
        )));
    }
    let (qkv, cos, sin) = (qkv.contiguous()?, cos.contiguous()?, sin.contiguous()?);
    let (src, cv, sv) = (
        F32View::new(&qkv)?,
        F32View::new(&cos)?,
        F32View::new(&sin)?,
    );
    let (src, cos, sin) = (src.data(), cv.data(), sv.data());
    let mut q = vec![0f32; b * s * c];
    let mut k = vec![0f32; b * s * c];
    q.par_chunks_mut(c)
        .zip(k.par_chunks_mut(c))
        .enumerate()
        .for_each(|(row, (q, k))| {
            let x = &src[row * c3..row * c3 + 2 * c];
            let (cos, sin) = (&cos[row * half..][..half], &sin[row * half..][..half]);
            for (dst, x) in [(q, &x[..c]), (k, &x[c..])] {
                for (dst, x) in dst.chunks_exact_mut(head_dim).zip(x.chunks_exact(head_dim)) {
                    let (d1, d2) = dst.split_at_mut(half);
                    let (x1, x2) = x.split_at(half);
                    for i in 0..half {
                        d1[i] = x1[i] * cos[i] - x2[i] * sin[i];
                        d2[i] = x1[i] * sin[i] + x2[i] * cos[i];
                    }
                }
            }
        });
    let shape = (b, s, heads, head_dim);
    Ok((
        Tensor::from_vec(q, shape, &Device::Cpu)?,
        Tensor::from_vec(k, shape, &Device::Cpu)?,
    ))
}

/// `up * silu(gate)` of a `[.., 2·I]` `gate_up` output whose halves are `(gate, up)`, in one pass.
pub(crate) fn silu_mul(gate_up: &Tensor, inter: usize) -> Result<Tensor> {
    let dims = gate_up.dims().to_vec();
    let gu = gate_up.contiguous()?;
    let view = F32View::new(&gu)?;
    let src = view.data();
    let rows = gu.elem_count() / (2 * inter);
    let mut out = vec![0f32; rows * inter];
    out.par_chunks_mut(inter).enumerate().for_each(|(r, o)| {
        let row = &src[r * 2 * inter..][..2 * inter];
        silu_mul_rows(&row[..inter], &row[inter..], o);
    });
    let mut shape = dims;
    *shape.last_mut().expect("gate_up has a last dimension") = inter;
    Ok(Tensor::from_vec(out, shape, &Device::Cpu)?)
}

/// Row-major `c = alpha·a·b` (`accumulate`: `c += alpha·a·b`) with `(m, n, k)` = rows of `a`, columns of
/// `b`, inner size; `a` and `c` as (pointer, row stride); `b` as (pointer, row stride, stored transposed,
/// i.e. as `n×k`). The `gemm` crate candle uses (AVX-512 kernels where the CPU has them); single-threaded,
/// since callers parallelise around it.
///
/// # Safety
/// The pointers and strides must describe in-bounds `m×k`, `k×n` (or `n×k`) and `m×n` matrices, and `c`
/// must not be written by anyone else meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (a, lda): (*const f32, usize),
    (b, ldb, b_transposed): (*const f32, usize, bool),
    (c, ldc): (*mut f32, usize),
    alpha: f32,
    accumulate: bool,
) {
    let (b_cs, b_rs) = if b_transposed { (ldb, 1) } else { (1, ldb) };
    // gemm's convention: dst = alpha·dst + beta·lhs·rhs.
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        ldc as isize,
        accumulate,
        a,
        1,
        lda as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        if accumulate { 1.0 } else { 0.0 },
        alpha,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Query rows per attention task: its score block (`ROWS × Sk` f32, 0.5 MB at Sk = 1100) stays in L2;
/// 32 to 256 measured within noise of each other.
const ROWS: usize = 128;

/// Raw output pointer shared by the attention tasks, which write disjoint `(rows, head)` blocks.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a distinct block of the output; nothing reads it concurrently.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper rather than the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `softmax(q kᵀ / sqrt(D) + mask) v`, returned as `[B,Sq,H·D]` (the heads already transposed back, as
/// `o_proj` reads them).
///
/// `q` is `[B,H,Sq,D]`; `kv` lists key/value segments `[B,H,Sk_i,D]` (e.g. cached then new) whose
/// concatenation along the sequence is the key axis; any strides with a contiguous last dimension.
/// `mask` is the additive `[B,1,Sq,Sk]` mask, applied to rows `< free_from` only.
///
/// Work is split over (batch, head, block of [`ROWS`] query rows): each task computes its score block
/// with one small gemm per segment, adds the mask, takes the softmax with [`exp_fast`], multiplies by `v`
/// into the output and divides by the row sums there (D values a row instead of Sk).
pub(crate) fn attention(
    q: &Tensor,
    kv: &[(Tensor, Tensor)],
    mask: &Tensor,
    free_from: usize,
) -> Result<Tensor> {
    let (b, h, sq, d) = q.dims4()?;
    let mut lens = Vec::with_capacity(kv.len());
    for (k, v) in kv {
        let (kb, kh, n, kd) = k.dims4()?;
        if (kb, kh, kd) != (b, h, d) || v.dims() != k.dims() {
            return Err(Error::Input(format!(
                "attention: q {:?}, k {:?}, v {:?}",
                q.dims(),
                k.dims(),
                v.dims()
            )));
        }
        lens.push(n);
    }
    let sk: usize = lens.iter().sum();
    let free_from = free_from.min(sq);
    if mask.dims() != [b, 1, sq, sk] {
        return Err(Error::Input(format!(
            "attention mask {:?} does not match [{b}, 1, {sq}, {sk}]",
            mask.dims()
        )));
    }
    let qv = F32View::new(q)?;
    let kvv = kv
        .iter()
        .map(|(k, v)| Ok((F32View::new(k)?, F32View::new(v)?)))
        .collect::<Result<Vec<_>>>()?;
    let mv = F32View::new(mask)?;
    let (qs, ms) = (qv.strided(), mv.strided());
    let kvs: Vec<_> = kvv
        .iter()
        .map(|(k, v)| (k.strided(), v.strided()))
        .collect();
    let scale = 1.0 / (d as f32).sqrt();
    let c = h * d;
    let mut out = vec![0f32; b * sq * c];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let blocks = sq.div_ceil(ROWS);

    (0..b * h * blocks).into_par_iter().for_each_init(
        || (Vec::<f32>::new(), Vec::<f32>::new()),
        |(scores, sums), task| {
            // Block index fastest: a thread's consecutive tasks reuse one head's K/V from cache.
            let (bh, blk) = (task / blocks, task % blocks);
            let (bi, hi) = (bh / h, bh % h);
            let r0 = blk * ROWS;
            let m = ROWS.min(sq - r0);
            scores.resize(m * sk, 0.0);
            sums.resize(m, 0.0);
            let q_ptr = qs.at(bi, hi, r0).as_ptr();
            let mut col = 0;
            for ((k, _), &n) in kvs.iter().zip(&lens) {
                // SAFETY: the pointers and strides describe in-bounds m×d, d×n and m×n matrices.
                unsafe {
                    matmul(
                        (m, n, d),
                        (q_ptr, qs.s[2]),
                        (k.at(bi, hi, 0).as_ptr(), k.s[2], true),
                        (scores.as_mut_ptr().add(col), sk),
                        scale,
                        false,
                    );
                }
                col += n;
            }
            for (i, (row, sum)) in scores.chunks_exact_mut(sk).zip(sums.iter_mut()).enumerate() {
                let r = r0 + i;
                let mask_row = (r < free_from).then(|| &ms.at(bi, 0, r)[..sk]);
                *sum = exp_row(row, mask_row);
            }
            let dst = out_ptr.get().wrapping_add((bi * sq + r0) * c + hi * d);
            let (mut col, mut first) = (0, true);
            for ((_, v), &n) in kvs.iter().zip(&lens) {
                if n == 0 {
                    continue;
                }
                // SAFETY: as above; `dst` is this task's own m×d block of `out` (row stride c).
                unsafe {
                    matmul(
                        (m, d, n),
                        (scores.as_ptr().add(col), sk),
                        (v.at(bi, hi, 0).as_ptr(), v.s[2], false),
                        (dst, c),
                        1.0,
                        !first,
                    );
                }
                col += n;
                first = false;
            }
            for (i, &sum) in sums.iter().enumerate() {
                let inv = 1.0 / sum;
                // SAFETY: row i of this task's block.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.add(i * c), d) };
                row.iter_mut().for_each(|x| *x *= inv);
            }
        },
    );
    // Release the storage read locks before wrapping the output.
    drop(kvs);
    drop((qv, kvv, mv));
    Ok(Tensor::from_vec(out, (b, sq, c), &Device::Cpu)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_fast_is_within_two_ulp_of_libm() {
        let mut worst = (0u32, 0f32);
        // Every 257th f32 in [-87.33, 88.37] (about 2.2e9 values / 257).
        let (lo, hi) = (-87.336_55f32, 88.376_26f32);
        let mut bits = lo.to_bits();
        let mut checks = 0usize;
        // Negative side: bits decrease towards 0.0.
        while bits > 0x8000_0000 {
            let x = f32::from_bits(bits);
            let u = ulps(exp_fast(x), x.exp());
            if u > worst.0 {
                worst = (u, x);
            }
            bits -= 257;
            checks += 1;
        }
        let mut x = 0f32;
        while x <= hi {
            let u = ulps(exp_fast(x), x.exp());
            if u > worst.0 {
                worst = (u, x);
            }
            x = f32::from_bits(x.to_bits() + 257);
            checks += 1;
        }
        assert!(checks > 1_000_000);
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_fast_flushes_tiny_and_minus_infinity_to_zero() {
        for x in [f32::NEG_INFINITY, f32::MIN, -1e30, -100.0, -87.4] {
            assert_eq!(exp_fast(x), 0.0, "x = {x}");
        }
        assert_eq!(exp_fast(0.0), 1.0);
        assert!(exp_fast(100.0).is_finite() && exp_fast(100.0) > 1e38);
    }

    #[test]
    fn silu_mul_matches_candle() -> Result<()> {
        let inter = 37;
        let gu = Tensor::randn(0f32, 4.0, (2, 5, 2 * inter), &Device::Cpu)?;
        let gate = gu.narrow(2, 0, inter)?;
        let up = gu.narrow(2, inter, inter)?;
        let want = (up * candle_nn::ops::silu(&gate)?)?;
        let got = silu_mul(&gu, inter)?;
        assert_eq!(got.dims(), want.dims());
        let err = rel_err(&got, &want)?;
        assert!(err < 1e-6, "relative error {err}");
        Ok(())
    }

    /// max |a - b| / max |b|.
    pub(crate) fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
        let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        Ok(diff / scale)
    }
}

//! Which kernel taps of a convolution reach which input positions, one spatial axis at a time.
//!
//! This is the one place that decides it: the convolution kernels (reference and optimized)
//! iterate exactly these pairs, and [`crate::Model::node_macs`] counts them, so a MAC count is
//! the number of multiply-accumulates a kernel really performs. Both directions are closed
//! forms, O(1) per output coordinate, with no search over the kernel.
//!
//! - **Convolution**: output `o` reads input `i = o * stride - pad + k * dilation` through tap
//!   `k`; taps whose `i` falls outside `0..input` (padding) are not listed.
//! - **Transposed convolution**, by phase decomposition: input `i` reaches output
//!   `o = i * stride - pad + k`, so output `o` gets exactly the taps
//!   `k ≡ (o + pad) (mod stride)`, each from `i = (o + pad - k) / stride`. The outputs of one
//!   phase (`o ≡ p (mod stride)`) share one residue of `k`: a small dense convolution with no
//!   inserted zeros and no flipped copy of the filter. Only taps with `i` in `0..input` are
//!   listed.

/// Largest input or output extent an [`Axis`] takes: a blob's heights and widths are `u16`.
pub const MAX_EXTENT: usize = u16::MAX as usize;
/// Largest kernel size, stride, dilation or padding an [`Axis`] takes: a blob stores them in
/// one byte each.
pub const MAX_GEOMETRY: usize = u8::MAX as usize;

/// One spatial axis (height or width) of a convolution or transposed convolution. The bounds
/// checked by [`Axis::new`] keep every coordinate computation far inside `isize` on 32-bit
/// targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
}

impl Axis {
    /// An axis with `input` and `output` positions (1..=[`MAX_EXTENT`]), a kernel of `kernel`
    /// taps, `stride` and `dilation` (1..=[`MAX_GEOMETRY`]) and `pad` leading positions
    /// (0..=[`MAX_GEOMETRY`]): of implicit padding for a convolution, cropped from the full
    /// output for a transposed one. `None` outside those ranges.
    pub fn new(input: usize, output: usize, kernel: usize, stride: usize, dilation: usize, pad: usize) -> Option<Self> {
        let extent = 1..=MAX_EXTENT;
        let geometry = 1..=MAX_GEOMETRY;
        let ok = extent.contains(&input)
            && extent.contains(&output)
            && geometry.contains(&kernel)
            && geometry.contains(&stride)
            && geometry.contains(&dilation)
            && pad <= MAX_GEOMETRY;
        ok.then_some(Axis { input, output, kernel, stride, dilation, pad })
    }

    /// Input positions.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Output positions.
    pub fn output(&self) -> usize {
        self.output
    }

    /// Kernel taps.
    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// Dilation (1 for a transposed convolution).
    pub fn dilation(&self) -> usize {
        self.dilation
    }

    /// Leading padding (convolution) or positions cropped from the full output (transposed).
    pub fn pad(&self) -> usize {
        self.pad
    }

    /// Stride: the number of phases of a transposed convolution.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The taps `(k, i)` of a convolution's output `o` whose input `i` lies inside the input,
    /// `k` increasing. Nothing for `o` outside `0..output`.
    pub fn conv_taps(&self, o: usize) -> Taps {
        // A stride or dilation outside 1..=MAX_GEOMETRY never passes `new`; saying so lets the
        // compiler drop the divisions' panic paths (zero, overflow): the C API links none.
        if o >= self.output
            || !(1..=MAX_GEOMETRY).contains(&self.stride)
            || !(1..=MAX_GEOMETRY).contains(&self.dilation)
        {
            return Taps::EMPTY;
        }
        // Every value below is at most 2^16 * 2^8 + 2^16 in magnitude (see `new`).
        let (s, d, pad) = (self.stride as isize, self.dilation as isize, self.pad as isize);
        let base = o as isize * s - pad;
        let last_input = self.input as isize - 1;
        if base > last_input {
            return Taps::EMPTY;
        }
        let k_min = if base >= 0 { 0 } else { (-base + d - 1) / d };
        let k_end = ((last_input - base) / d + 1).min(self.kernel as isize);
        if k_end <= k_min {
            return Taps::EMPTY;
        }
        Taps { k: k_min as usize, i: (base + k_min * d) as usize, k_step: 1, i_step: d, left: (k_end - k_min) as usize }
    }

    /// The kernel tap residue of phase `p` of a transposed convolution: the outputs
    /// `o ≡ p (mod stride)` use exactly the taps `k ≡ (p + pad) (mod stride)`.
    pub fn phase_tap(&self, p: usize) -> usize {
        (p % self.stride + self.pad % self.stride) % self.stride
    }

    /// The taps `(k, i)` of a transposed convolution's output `o` (ignoring the dilation,
    /// which is 1 there): `k ≡ (o + pad) (mod stride)` ([`Axis::phase_tap`]), `k` increasing,
    /// `i = (o + pad - k) / stride` inside the input (so decreasing). Nothing for `o` outside
    /// `0..output`.
    pub fn transpose_taps(&self, o: usize) -> Taps {
        if o >= self.output || !(1..=MAX_GEOMETRY).contains(&self.stride) {
            return Taps::EMPTY;
        }
        let (s, t) = (self.stride as isize, (o + self.pad) as isize);
        let (k0, q) = (t % s, t / s);
        // k = k0 + j s reads i = q - j: 0 <= i < input and k < kernel bound j.
        let j_min = (q + 1 - self.input as isize).max(0);
        let kernel = self.kernel as isize;
        let j_end = (q + 1).min(if kernel > k0 { (kernel - k0 + s - 1) / s } else { 0 });
        if j_end <= j_min {
            return Taps::EMPTY;
        }
        Taps {
            k: (k0 + j_min * s) as usize,
            i: (q - j_min) as usize,
            k_step: self.stride,
            i_step: -1,
            left: (j_end - j_min) as usize,
        }
    }

    /// The number of taps over every output position: `sum_o conv_taps(o).len()`, or of
    /// [`Axis::transpose_taps`] when `transposed`.
    pub fn total_taps(&self, transposed: bool) -> u64 {
        (0..self.output).map(|o| if transposed { self.transpose_taps(o) } else { self.conv_taps(o) }.len() as u64).sum()
    }
}

/// The `(k, i)` pairs of one output coordinate: kernel tap `k`, input position `i`. An
/// arithmetic progression in both, cheap to copy and to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taps {
    k: usize,
    i: usize,
    k_step: usize,
    i_step: isize,
    left: usize,
}

impl Taps {
    const EMPTY: Taps = Taps { k: 0, i: 0, k_step: 1, i_step: 1, left: 0 };
}

impl Iterator for Taps {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        let item = (self.k, self.i);
        self.left -= 1;
        if self.left > 0 {
            self.k += self.k_step;
            self.i = self.i.wrapping_add_signed(self.i_step);
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Taps {}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn taps_are_exactly_the_pairs_of_the_definitions() {
        for input in 1..=7 {
            for output in 1..=16 {
                for kernel in 1..=5 {
                    for stride in 1..=3 {
                        for dilation in 1..=2 {
                            for pad in 0..=4 {
                                let a = Axis::new(input, output, kernel, stride, dilation, pad).unwrap();
                                for o in 0..output + 2 {
                                    let conv: Vec<_> = (0..kernel)
                                        .filter_map(|k| {
                                            let i = (o * stride + k * dilation) as isize - pad as isize;
                                            (o < output && i >= 0 && i < input as isize).then_some((k, i as usize))
                                        })
                                        .collect();
                                    assert_eq!(a.conv_taps(o).collect::<Vec<_>>(), conv, "{a:?} o={o}");
                                    // Transposed: every (k, i) with i * stride - pad + k == o.
                                    let transposed: Vec<_> = (0..kernel)
                                        .flat_map(|k| (0..input).map(move |i| (k, i)))
                                        .filter(|&(k, i)| {
                                            o < output && (i * stride + k) as isize - pad as isize == o as isize
                                        })
                                        .collect();
                                    assert_eq!(a.transpose_taps(o).collect::<Vec<_>>(), transposed, "{a:?} o={o}");
                                    assert!(a.transpose_taps(o).all(|(k, _)| k % stride == a.phase_tap(o)));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bounds_are_checked_and_extremes_stay_in_range() {
        assert!(Axis::new(0, 1, 1, 1, 1, 0).is_none());
        assert!(Axis::new(1, 1, 1, 0, 1, 0).is_none());
        assert!(Axis::new(1, 1, 256, 1, 1, 0).is_none());
        assert!(Axis::new(MAX_EXTENT + 1, 1, 1, 1, 1, 0).is_none());
        let a = Axis::new(MAX_EXTENT, MAX_EXTENT, 255, 255, 255, 255).unwrap();
        for o in [0, 1, MAX_EXTENT - 1] {
            assert!(a.conv_taps(o).all(|(k, i)| k < 255 && i < MAX_EXTENT));
            assert!(a.transpose_taps(o).all(|(k, i)| k < 255 && i < MAX_EXTENT));
        }
        // Kernel 4, stride 2, pad 1, 7 -> 14: two taps per output but one at each edge.
        let a = Axis::new(7, 14, 4, 2, 1, 1).unwrap();
        assert_eq!(a.total_taps(true), 26);
    }
}

//! Offline arena planning: every tensor gets a byte offset so that tensors alive at the same
//! time never share bytes, and a node's output never overlaps its inputs (the runtime relies
//! on that to borrow both from one arena). Greedy first-fit, largest tensors first, which is
//! optimal for the chain-shaped graphs of MLP autoencoders.

use tinyvae::format::align_up;

/// A tensor to place: its size and the span of steps during which it must stay intact.
/// Step -1 is input staging; step `n` (the node count) is output reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Bytes per sample.
    pub bytes: usize,
    /// First step it is written.
    pub first: i64,
    /// Last step it is read.
    pub last: i64,
}

impl Lifetime {
    fn overlaps(&self, other: &Lifetime) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Offsets for each tensor (same order as `tensors`) and the total arena bytes, all multiples
/// of the runtime's alignment.
pub fn plan_arena(tensors: &[Lifetime]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(tensors[i].bytes), i));
    let mut offsets = vec![0usize; tensors.len()];
    let mut placed: Vec<usize> = Vec::new();
    for &i in &order {
        let size = align_up(tensors[i].bytes);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| tensors[j].overlaps(&tensors[i]))
            .map(|&j| (offsets[j], offsets[j] + align_up(tensors[j].bytes)))
            .collect();
        busy.sort();
        let mut at = 0;
        for (start, end) in busy {
            if at + size <= start {
                break;
            }
            at = at.max(end);
        }
        offsets[i] = at;
        placed.push(i);
    }
    let total = tensors.iter().zip(&offsets).map(|(t, &o)| o + align_up(t.bytes)).max().unwrap_or(0);
    (offsets, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tensors: &[Lifetime]) -> usize {
        let (off, total) = plan_arena(tensors);
        for i in 0..tensors.len() {
            assert_eq!(off[i] % 16, 0);
            assert!(off[i] + tensors[i].bytes <= total);
            for j in 0..i {
                if tensors[i].overlaps(&tensors[j]) {
                    let (a, b) = (off[i]..off[i] + tensors[i].bytes, off[j]..off[j] + tensors[j].bytes);
                    assert!(a.end <= b.start || b.end <= a.start, "{i} and {j} collide");
                }
            }
        }
        total
    }

    #[test]
    fn decoder_chain_reuses_dead_tensors() {
        // z(20) -> hidden(400) -> logits(784) -> pixels(784), int8.
        let t = [
            Lifetime { bytes: 20, first: -1, last: 0 },
            Lifetime { bytes: 400, first: 0, last: 1 },
            Lifetime { bytes: 784, first: 1, last: 2 },
            Lifetime { bytes: 784, first: 2, last: 3 },
        ];
        let total = check(&t);
        // Never more than the two largest neighbours side by side.
        assert!(total <= 784 + 784, "{total}");
    }

    #[test]
    fn random_graphs_never_collide() {
        let mut rng = tinyvae::Rng::new(4);
        for _ in 0..500 {
            let n = 1 + rng.below(12) as usize;
            let t: Vec<Lifetime> = (0..n)
                .map(|_| {
                    let first = rng.below(10) as i64 - 1;
                    Lifetime { bytes: 1 + rng.below(3000) as usize, first, last: first + rng.below(4) as i64 }
                })
                .collect();
            check(&t);
        }
    }
}

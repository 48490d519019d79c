//! The weight-streaming floor, scalar: every weight byte read once and summed.

/// Sum of `weights` as int8 values, wrapping.
pub fn weight_stream(weights: &[u8]) -> i32 {
    weights.iter().fold(0i32, |acc, &w| acc.wrapping_add(w as i8 as i32))
}

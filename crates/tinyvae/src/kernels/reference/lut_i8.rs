//! int8 elementwise activation through a 256-entry table (sigmoid, tanh, leaky ReLU...).
//! The table is computed on the host at quantize time and stored in the blob, so every target
//! gives the same bytes by construction.

/// `out[i] = table[x[i] + 128]`. A table shorter than 256 leaves the outputs it can't map alone
/// (the parser only admits 256-byte tables).
pub fn lut_i8(table: &[u8], x: &[i8], out: &mut [i8]) {
    for (y, &v) in out.iter_mut().zip(x) {
        if let Some(&t) = table.get((v as i32 + 128) as usize) {
            *y = t as i8;
        }
    }
}

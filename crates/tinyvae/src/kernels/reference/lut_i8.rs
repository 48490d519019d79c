//! int8 elementwise activation through a 256-entry table (sigmoid, tanh, leaky ReLU...).
//! The table is computed on the host at quantize time and stored in the blob, so every target
//! gives the same bytes by construction.

/// `out[i] = table[x[i] + 128]`. A table shorter than 256 entries writes nothing (the parser
/// only admits 256-byte tables; see the [kernel contract](crate::kernels#the-contract)).
pub fn lut_i8(table: &[u8], x: &[i8], out: &mut [i8]) {
    let Some(table) = table.first_chunk::<256>() else {
        return;
    };
    for (y, &v) in out.iter_mut().zip(x) {
        *y = table[(v as i32 + 128) as usize] as i8;
    }
}

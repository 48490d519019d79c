//! `tinyvae deploy BLOB.tvae -o DIR --lang c`: the blob as C sources for firmware that links
//! the C API (`crates/tinyvae-c`): `model.h` with `#define`s for the sizes and `model.c` with
//! the blob as a 16-byte aligned `const` array (in flash).
//!
//! A `_Static_assert` ties the arena `#define` to the blob's own arena field: the four bytes of
//! that field are written through macros that both the array and the assertion use, so a
//! `model.c` edited or copied from another blob fails to compile instead of running with a
//! stale arena size.

use std::fmt::Write as _;

use tinyvae::format::ALIGN;
use tinyvae::Model;

/// Byte offset of the header's `arena_bytes` field (`docs/FORMAT.md`).
const ARENA_FIELD: usize = 20;

/// `(model.h, model.c)` for `blob`, named after `source` in their comments.
pub fn c_sources(
    model: &Model<'_>,
    blob: &[u8],
    source: &str,
    threshold: Option<&tinyvae_compiler::anomaly::Threshold>,
) -> (String, String) {
    let meta = model.meta();
    let kind = match model.kind() {
        tinyvae::ModelKind::Decoder => 1,
        tinyvae::ModelKind::Encoder => 2,
        tinyvae::ModelKind::Autoencoder => 3,
        tinyvae::ModelKind::Classifier => 4,
        tinyvae::ModelKind::Generic => 0,
    };
    let mut h = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        r#"/* The model `{source}`, as deployed by `tinyvae deploy --lang c`: {precision} {kind_name},
   {len}-byte blob, {arena}-byte arena, {macs} MACs per sample. Generated: run the command again
   rather than editing, whenever the blob changes.

       #include "tinyvae.h"
       #include "model.h"
       static uint8_t arena[TINYVAE_MODEL_ARENA_SIZE];
       tinyvae_model m;
       tinyvae_model_parse(tinyvae_model_blob, TINYVAE_MODEL_BLOB_SIZE, &m); */
#ifndef TINYVAE_MODEL_H
#define TINYVAE_MODEL_H

#include <stdint.h>

/* Bytes of the blob (flash). */
#define TINYVAE_MODEL_BLOB_SIZE {len}u
/* Bytes of arena for one sample, alignment slack included: the size of the caller's buffer. */
#define TINYVAE_MODEL_ARENA_SIZE {arena}u
/* Values per sample of input 0 (z for a decoder, pixels for an encoder) and of output 0. */
#define TINYVAE_MODEL_INPUT_SIZE {input}u
#define TINYVAE_MODEL_OUTPUT_SIZE {output}u
/* Latent size (z), label classes (0: unconditional), multiply-accumulates per sample. */
#define TINYVAE_MODEL_LATENT {latent}u
#define TINYVAE_MODEL_CLASSES {classes}u
#define TINYVAE_MODEL_MACS {macs}u
/* TINYVAE_KIND_DECODER (1), TINYVAE_KIND_ENCODER (2), TINYVAE_KIND_AUTOENCODER (3),
   TINYVAE_KIND_CLASSIFIER (4) or TINYVAE_KIND_GENERIC (0). */
#define TINYVAE_MODEL_KIND {kind}
/* Image width and height (0 when not an image). */
#define TINYVAE_MODEL_WIDTH {width}u
#define TINYVAE_MODEL_HEIGHT {height}u
{threshold}
#ifdef __cplusplus
extern "C" {{
#endif

/* The blob, 16-byte aligned: pass it to tinyvae_model_parse. */
extern const uint8_t tinyvae_model_blob[TINYVAE_MODEL_BLOB_SIZE];

#ifdef __cplusplus
}}
#endif

#endif /* TINYVAE_MODEL_H */
"#,
        precision = model.precision(),
        kind_name = model.kind(),
        len = blob.len(),
        arena = model.arena_size(),
        macs = model.macs(),
        input = model.input(0).map_or(0, |t| t.len),
        output = model.output(0).map_or(0, |t| t.len),
        latent = meta.latent,
        classes = meta.classes,
        width = meta.width,
        height = meta.height,
        threshold = threshold.map_or(String::new(), |t| format!(
            "/* Alarm when tinyvae_anomaly_score's raw score is above this: {:.2}% of {} normal vectors\n   \
             do (target {:.2}%); as a mean squared error, {:.4e}. */\n#define TINYVAE_MODEL_THRESHOLD_RAW {}ull\n",
            100.0 * t.normal_fpr,
            t.normal_vectors,
            100.0 * t.target_fpr,
            t.value,
            t.raw
        )),
    );

    let mut c = String::with_capacity(blob.len() * 5 + 1024);
    let _ = write!(
        c,
        r#"/* The blob of `{source}`, as deployed by `tinyvae deploy --lang c`. Generated. */
#include "model.h"

/* The blob's arena field (header bytes {f0}..{f3}, little-endian), written through these macros
   both into the array and into the assertion below. */
#define TINYVAE_ARENA_B0 0x{b0:02x}u
#define TINYVAE_ARENA_B1 0x{b1:02x}u
#define TINYVAE_ARENA_B2 0x{b2:02x}u
#define TINYVAE_ARENA_B3 0x{b3:02x}u

_Static_assert((TINYVAE_ARENA_B0 | (TINYVAE_ARENA_B1 << 8) | (TINYVAE_ARENA_B2 << 16) | ((unsigned long)TINYVAE_ARENA_B3 << 24)) + {align}u
                   == TINYVAE_MODEL_ARENA_SIZE,
               "TINYVAE_MODEL_ARENA_SIZE is not this blob's arena: run tinyvae deploy --lang c again");

#if defined(__GNUC__) || defined(__clang__)
__attribute__((aligned(16)))
#endif
const uint8_t tinyvae_model_blob[TINYVAE_MODEL_BLOB_SIZE] = {{"#,
        f0 = ARENA_FIELD,
        f3 = ARENA_FIELD + 3,
        b0 = blob[ARENA_FIELD],
        b1 = blob[ARENA_FIELD + 1],
        b2 = blob[ARENA_FIELD + 2],
        b3 = blob[ARENA_FIELD + 3],
        align = ALIGN,
    );
    for (i, b) in blob.iter().enumerate() {
        if i % 16 == 0 {
            c.push_str("\n    ");
        }
        match i.checked_sub(ARENA_FIELD) {
            Some(k @ 0..=3) => {
                let _ = write!(c, "TINYVAE_ARENA_B{k},");
            }
            _ => {
                let _ = write!(c, "0x{b:02x},");
            }
        }
    }
    c.push_str("\n};\n");
    (h, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_state_the_blob_and_tie_the_arena_to_its_bytes() {
        let blob = tinyvae::format::write::example_decoder();
        let model = Model::parse(&blob).unwrap();
        let (h, c) = c_sources(&model, &blob, "example", None);
        assert!(h.contains(&format!("#define TINYVAE_MODEL_ARENA_SIZE {}u", model.arena_size())));
        assert!(h.contains(&format!("#define TINYVAE_MODEL_BLOB_SIZE {}u", blob.len())));
        assert!(h.contains("#define TINYVAE_MODEL_LATENT 2u") && h.contains("#define TINYVAE_MODEL_KIND 1"));
        // Every byte is in the array, the arena field's four through the asserted macros.
        assert_eq!(c.matches("0x").count() - 4, blob.len() - 4);
        assert!(c.contains("TINYVAE_ARENA_B0,TINYVAE_ARENA_B1,TINYVAE_ARENA_B2,TINYVAE_ARENA_B3,"));
        assert!(c.contains(&format!("#define TINYVAE_ARENA_B0 0x{:02x}u", blob[ARENA_FIELD])));
    }
}

//! The `external` fuzz target: ONNX external data (the sidecar files `torch.onnx.export`
//! writes) with hostile `location`, `offset` and `length` entries, through the importer's
//! resolution (`onnx::import_proto_in`).
//!
//! The model is the small decoder of `tests/data/external-data` (four initializers). Its
//! weights are written once per process to a scratch folder as `model/decoder.onnx.data`,
//! beside the traps a hostile location can aim at: `outside.data` one folder up (filled with
//! a byte pattern no weight has), a symbolic link `model/link.data` to it, a link `model/up`
//! to the folder above, a folder `model/weights` and a decoy `model/weights/decoder.onnx.data`.
//! The fuzz bytes choose, for each initializer, whether it is external, its location (from a
//! list of hostile spellings, or bytes of the input), its offset and length (sane, absurd or
//! bytes of the input), and possibly its dimensions.
//!
//! A location out of the folder (absolute, `..`, through a link), a range past a file's end,
//! a wrong length or absurd dimensions must be an `ImportError`; a graph that imports must
//! hold no value read from outside the folder, and must export and import again. Any panic
//! is a bug.
//!
//! This file is also compiled into `crates/tinyvae-compiler/tests/fuzz_regressions.rs`, which
//! runs the seeds and the regression inputs through it in the normal test suite.

use std::path::PathBuf;
use std::sync::OnceLock;

use tinyvae_compiler::onnx;
use tinyvae_compiler::onnx::proto as pb;
use tinyvae_compiler::onnx::proto::tensor_proto::DataLocation;

/// The decoder with its weights inside the model.
const EMBEDDED: &[u8] = include_bytes!("../../tests/data/external-data/embedded.onnx");
/// The sidecar's name, as torch writes it.
const FILE: &str = "decoder.onnx.data";
/// The byte of `outside.data`: as f32 `0x7f7f7f7f` (about 3.4e38), which no weight is.
const OUTSIDE: u8 = 0x7f;

/// The model (weights as raw data) and the folder its sidecar lives in, made once per process.
fn setup() -> &'static (pb::ModelProto, PathBuf, Vec<u64>) {
    static SETUP: OnceLock<(pb::ModelProto, PathBuf, Vec<u64>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let graph = onnx::import_bytes(EMBEDDED).expect("the embedded decoder imports");
        let model = onnx::to_model_proto(&graph).expect("and exports");
        let root = std::env::temp_dir().join(format!("tinyvae-fuzz-external-{}", std::process::id()));
        let dir = root.join("model");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(dir.join("weights")).expect("scratch folder");
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for t in &model.graph.as_ref().expect("a graph").initializer {
            offsets.push(data.len() as u64);
            data.extend_from_slice(&t.raw_data);
        }
        std::fs::write(dir.join(FILE), &data).expect("sidecar");
        std::fs::write(dir.join("weights").join(FILE), vec![0u8; data.len()]).expect("decoy");
        std::fs::write(root.join("outside.data"), vec![OUTSIDE; 4 * data.len()]).expect("outside file");
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink(root.join("outside.data"), dir.join("link.data"));
            let _ = std::os::unix::fs::symlink(&root, dir.join("up"));
        }
        (model, dir, offsets)
    })
}

/// Reads the fuzz bytes as a stream of choices.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// Up to 255 bytes of the input, as (lossy) text.
    fn text(&mut self) -> String {
        let n = (self.byte() as usize).min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| v << 8 | u64::from(self.byte()))
    }
}

/// Runs one fuzz input. Panics exactly when the importer misbehaves.
pub fn run(data: &[u8]) {
    let Ok(graph) = import(data) else { return };
    // Nothing outside the folder was read: no weight holds the outside file's pattern.
    let outside = f32::from_bits(u32::from_le_bytes([OUTSIDE; 4]));
    for n in &graph.nodes {
        if let tinyvae_compiler::ir::Op::Dense { weight, bias } = &n.op {
            assert!(!weight.iter().chain(bias.iter()).any(|&v| v == outside), "node {} read outside.data", n.name);
        }
    }
    // What imports exports, and imports again to the same bytes (compared as bytes: a weight
    // read from the wrong offset may be a NaN, which is not equal to itself).
    let bytes = onnx::export(&graph).expect("an imported graph exports");
    let again = onnx::import_bytes(&bytes).expect("and imports again");
    assert!(onnx::export(&again).expect("and exports again") == bytes, "the round trip changed the graph");
}

/// The model the fuzz bytes describe, imported from the scratch folder.
pub fn import(data: &[u8]) -> Result<tinyvae_compiler::Graph, onnx::ImportError> {
    let (template, dir, offsets) = setup();
    let mut c = Choices(data);
    let mut model = template.clone();
    let root = dir.parent().expect("the scratch root");
    for (t, &offset) in model.graph.as_mut().expect("a graph").initializer.iter_mut().zip(offsets) {
        let how = c.byte();
        if how & 1 == 0 {
            continue; // stays inside the model
        }
        let len = t.raw_data.len() as u64;
        t.raw_data.clear();
        t.data_location = DataLocation::External as i32;
        let location = match c.byte() % 12 {
            0..=2 => FILE.to_string(),
            3 => format!("weights/{FILE}"),
            4 => "../outside.data".into(),
            5 => root.join("outside.data").display().to_string(),
            6 => "link.data".into(),
            7 => "up/outside.data".into(),
            8 => format!("weights/../{FILE}"),
            9 => "weights".into(),
            10 => format!("./{FILE}"),
            _ => c.text(),
        };
        let number = |c: &mut Choices, sane: u64| match c.byte() % 8 {
            0..=2 => Some(sane.to_string()),
            3 => None,
            4 => Some(c.u64().to_string()),
            5 => Some((sane + u64::from(c.byte())).to_string()),
            6 => Some(["-1", "18446744073709551616", "", "0x10", " 4"][c.byte() as usize % 5].to_string()),
            _ => Some(c.text()),
        };
        let entries =
            [("location", Some(location)), ("offset", number(&mut c, offset)), ("length", number(&mut c, len))];
        for (key, value) in entries {
            if let Some(value) = value {
                t.external_data.push(pb::StringStringEntryProto { key: key.into(), value });
            }
        }
        if how & 2 != 0 {
            // A repeated or unknown key.
            t.external_data.push(pb::StringStringEntryProto { key: c.text(), value: c.text() });
        }
        if how & 4 != 0 {
            // Dimensions that disagree with the bytes, or overflow.
            let k = t.dims.len().max(1);
            t.dims = (0..k).map(|_| c.u64() as i64 >> (c.byte() % 64)).collect();
        }
    }
    onnx::import_proto_in(&model, dir)
}

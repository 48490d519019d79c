//! Initializers stored as ONNX external data, the sidecar (`decoder.onnx.data`) that
//! `torch.onnx.export` writes next to the model since torch 2.9. The fixtures in
//! `tests/data/external-data` come from ONNX's own writer and onnxruntime
//! (`tests/python/make_external_data_fixtures.py`): they must import as the same graph as the
//! embedded copy and compute what onnxruntime computed. The hostile variants are built here, in
//! a temporary folder: each must be an error naming the tensor and the location once.

mod common;

use std::path::{Path, PathBuf};

use common::chain;
use ndarray::Array2;
use prost::Message;
use tinyvae_compiler::onnx::proto as pb;
use tinyvae_compiler::onnx::proto::tensor_proto::{DataLocation, DataType};
use tinyvae_compiler::{import_bytes, import_file, Graph, ImportError, Role};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/external-data")
}

/// A fresh, empty folder for one test case.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_external_data").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn matrix(v: &serde_json::Value) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    let cols = rows[0].len();
    Array2::from_shape_vec((rows.len(), cols), rows.concat()).unwrap()
}

/// The decoder with its weights inside the model, as ONNX wrote it.
fn embedded() -> pb::ModelProto {
    pb::ModelProto::decode(std::fs::read(fixtures().join("embedded.onnx")).unwrap().as_slice()).unwrap()
}

fn initializers(m: &mut pb::ModelProto) -> &mut Vec<pb::TensorProto> {
    &mut m.graph.as_mut().unwrap().initializer
}

fn set_entry(t: &mut pb::TensorProto, key: &str, value: &str) {
    t.external_data.retain(|e| e.key != key);
    t.external_data.push(pb::StringStringEntryProto { key: key.into(), value: value.into() });
}

/// Moves every initializer's `raw_data` to the sidecar `file(name)` in `dir` (appending, so
/// tensors sharing a file get successive offsets), with `offset` and `length` entries when
/// `ranges`, and writes the model as `dir/decoder.onnx`.
fn externalize(mut m: pb::ModelProto, dir: &Path, file: impl Fn(&str) -> String, ranges: bool) -> PathBuf {
    use std::io::Write;
    for t in initializers(&mut m) {
        let location = file(&t.name);
        let path = dir.join(&location);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let offset = std::fs::metadata(&path).map_or(0, |md| md.len());
        std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap().write_all(&t.raw_data).unwrap();
        set_entry(t, "location", &location);
        if ranges {
            set_entry(t, "offset", &offset.to_string());
            set_entry(t, "length", &t.raw_data.len().to_string());
        }
        t.data_location = DataLocation::External as i32;
        t.raw_data.clear();
    }
    let path = dir.join("decoder.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}

#[test]
fn onnx_sidecars_import_as_the_embedded_model_and_match_onnxruntime() {
    let want = import_file(&fixtures().join("embedded.onnx")).unwrap();
    assert_eq!(want.role, Role::Decoder { latent: 4, classes: 0, bernoulli: true });
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let (z, x) = (matrix(&expected["z"]), matrix(&expected["x"]));
    assert_eq!((want.inputs[0].name.as_str(), want.outputs[0].as_str()), ("z", "x"));
    assert_eq!((expected["input"].as_str(), expected["output"].as_str()), (Some("z"), Some("x")));
    for layout in ["one-file", "per-tensor"] {
        let g = import_file(&fixtures().join(layout).join("decoder.onnx")).unwrap_or_else(|e| panic!("{layout}: {e}"));
        // Tests run in the package folder: the sidecar is found next to a relative path too.
        let relative = Path::new("../../tests/data/external-data").join(layout).join("decoder.onnx");
        assert_eq!(import_file(&relative).unwrap_or_else(|e| panic!("{}: {e}", relative.display())), g);
        assert_eq!(g, want, "{layout}: the sidecar gives another graph than the embedded weights");
        let got = g.eval(&[z.view()]).unwrap();
        assert_eq!(got[0].dim(), x.dim(), "{layout}");
        let d = got[0].iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d <= 1e-5, "{layout}: differs from onnxruntime by {d}");
    }
}

/// tract, the reference `validate` and `bench` compare against, reads the sidecars itself (not
/// through tinyvae's importer) and agrees with onnxruntime.
#[cfg(feature = "tract")]
#[test]
fn tract_reads_the_sidecars_and_matches_onnxruntime() {
    use tinyvae_compiler::TractModel;
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let (z, x) = (matrix(&expected["z"]), matrix(&expected["x"]));
    for layout in ["one-file", "per-tensor"] {
        let model = TractModel::load(&fixtures().join(layout).join("decoder.onnx"))
            .unwrap_or_else(|e| panic!("{layout}: {}", chain(&e)));
        let got = model.run(&[z.view()]).unwrap_or_else(|e| panic!("{layout}: {}", chain(&e)));
        let d = got[0].iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d <= 1e-5, "{layout}: tract differs from onnxruntime by {d}");
    }
    // From bytes there is no folder, and tract cannot find the weights: an error, not zeros.
    let bytes = std::fs::read(fixtures().join("one-file").join("decoder.onnx")).unwrap();
    assert!(TractModel::from_bytes(&bytes).is_err());
}

#[test]
fn model_bytes_have_no_folder_for_external_data() {
    let bytes = std::fs::read(fixtures().join("one-file/decoder.onnx")).unwrap();
    let e = import_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&e, ImportError::ExternalDataWithoutFolder { tensor, location }
            if tensor == "fc1.weight" && location == "decoder.onnx.data"),
        "{e:?}"
    );
    assert!(e.to_string().contains("file"), "{e}");
}

/// Locations through subfolders and `.`, default offsets and lengths, the other data types, a
/// symbolic link that stays in the folder.
#[test]
fn every_valid_spelling_loads_like_raw_data() {
    let mut m = embedded();
    let inits = initializers(&mut m);
    let f32s = |t: &pb::TensorProto| -> Vec<f32> {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    let b1 = f32s(&inits[1]);
    inits[1].data_type = DataType::Float16 as i32;
    inits[1].raw_data = b1.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    let w2 = f32s(&inits[2]);
    inits[2].data_type = DataType::Bfloat16 as i32;
    inits[2].raw_data = w2.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
    let b2 = f32s(&inits[3]);
    inits[3].data_type = DataType::Double as i32;
    inits[3].raw_data = b2.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
    let want = import_bytes(&m.encode_to_vec()).unwrap();

    let dir = scratch("valid");
    let path = externalize(m.clone(), &dir, |name| format!("./weights/{name}.bin"), false);
    assert_eq!(import_file(&path).unwrap(), want, "one file per tensor, no offsets or lengths");

    let dir = scratch("valid-shared");
    let path = externalize(m, &dir, |_| "weights/./all.bin".into(), true);
    assert_eq!(import_file(&path).unwrap(), want, "one shared file in a subfolder");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("weights/all.bin", dir.join("link.bin")).unwrap();
        let mut m = pb::ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
        for t in initializers(&mut m) {
            set_entry(t, "location", "link.bin");
        }
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        assert_eq!(import_file(&path).unwrap(), want, "a symbolic link inside the folder");
    }
}

/// The error a case must give: its variant, and a word of its problem.
enum Expect {
    Location(&'static str),
    Layout(&'static str),
    NotFound,
}

/// What a hostile or broken model does to the entries of `fc2.weight` (FLOAT [12, 16], 768
/// bytes at offset 320 of the 1,136-byte sidecar), and the error it must give.
struct Case {
    name: &'static str,
    location: String,
    offset: Option<&'static str>,
    /// `Some("")` removes the entry.
    length: Option<&'static str>,
    expect: Expect,
}

fn case(
    name: &'static str,
    location: impl Into<String>,
    offset: Option<&'static str>,
    length: Option<&'static str>,
    expect: Expect,
) -> Case {
    Case { name, location: location.into(), offset, length, expect }
}

#[test]
fn hostile_external_data_is_a_clean_error() {
    const FILE: &str = "decoder.onnx.data";
    const MAX: &str = "18446744073709551615";
    let root = scratch("hostile");
    std::fs::write(root.join("outside.data"), [0u8; 1136]).unwrap();
    let outside = root.join("outside.data").canonicalize().unwrap();
    let mut cases = vec![
        case("absolute", outside.display().to_string(), None, None, Expect::Location("absolute")),
        case("parent", "../outside.data", None, None, Expect::Location("..")),
        case("parent-inside", "weights/../decoder.onnx.data", None, None, Expect::Location("..")),
        case("missing", "missing.data", None, None, Expect::NotFound),
        case("folder", "weights", None, None, Expect::Location("regular file")),
        case("no-location", "", None, None, Expect::Location("missing")),
        case("offset-past-end", FILE, Some("1137"), None, Expect::Layout("past the end")),
        case("range-past-end", FILE, Some("1000"), None, Expect::Layout("past the end")),
        case("short-length", FILE, None, Some("764"), Expect::Layout("needs 768")),
        case("rest-of-file", FILE, None, Some(""), Expect::Layout("to the end")),
        case("max-offset", FILE, Some(MAX), None, Expect::Layout("past the end")),
        case("max-length", FILE, None, Some(MAX), Expect::Layout("past the end")),
        case("negative-offset", FILE, Some("-1"), None, Expect::Layout("byte count")),
        case("overflow-offset", FILE, Some("18446744073709551616"), None, Expect::Layout("byte count")),
        case("huge-dims", FILE, None, None, Expect::Layout("more than 2^64")),
    ];
    if cfg!(unix) {
        cases.extend([
            case("symlink-out", "link.data", None, None, Expect::Location("symbolic link")),
            case("symlink-folder", "up/outside.data", None, None, Expect::Location("symbolic link")),
            case("fifo", "pipe.data", None, None, Expect::Location("regular file")),
        ]);
    }
    for Case { name, location, offset, length, expect } in cases {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("weights")).unwrap();
        let path = externalize(embedded(), &dir, |_| FILE.into(), true);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, dir.join("link.data")).unwrap();
            std::os::unix::fs::symlink(&root, dir.join("up")).unwrap();
            if name == "fifo" {
                let made = std::process::Command::new("mkfifo").arg(dir.join("pipe.data")).status();
                if !made.is_ok_and(|s| s.success()) {
                    println!("skipped fifo: no mkfifo");
                    continue;
                }
            }
        }
        let mut m = pb::ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
        let t = &mut initializers(&mut m)[2];
        assert_eq!(t.name, "fc2.weight");
        if location.is_empty() {
            t.external_data.retain(|e| e.key != "location");
        } else {
            set_entry(t, "location", &location);
        }
        if let Some(v) = offset {
            set_entry(t, "offset", v);
        }
        match length {
            Some("") => t.external_data.retain(|e| e.key != "length"),
            Some(v) => set_entry(t, "length", v),
            None => {}
        }
        if name == "huge-dims" {
            // 2^62 values of 4 bytes: the element count fits a usize, its bytes do not fit a u64.
            t.dims = vec![1 << 31, 1 << 31];
        }
        std::fs::write(&path, m.encode_to_vec()).unwrap();

        let e = import_file(&path).map(|g: Graph| g.nodes.len()).unwrap_err();
        let msg = chain(&e);
        match expect {
            Expect::Location(p) => assert!(
                matches!(&e, ImportError::ExternalDataLocation { problem, .. } if problem.contains(p)),
                "{name}: {e:?}"
            ),
            Expect::Layout(p) => assert!(
                matches!(&e, ImportError::ExternalDataLayout { problem, .. } if problem.contains(p)),
                "{name}: {e:?}"
            ),
            Expect::NotFound => assert!(
                matches!(&e, ImportError::ExternalDataRead { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
                "{name}: {e:?}"
            ),
        }
        assert_eq!(msg.matches("`fc2.weight`").count(), 1, "{name}: {msg}");
        assert_eq!(msg.matches(&format!("`{location}`")).count(), 1, "{name}: {msg}");
    }
}

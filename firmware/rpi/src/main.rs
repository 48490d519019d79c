//! The Raspberry Pi example (aarch64 Linux): samples digits from a decoder blob with the
//! runtime, as the Cortex-M firmware does, and shows them through the same `tinyvae-display`
//! drawing code, on the Linux framebuffer when there is one and in a PNG otherwise.
//!
//! The pixels are those of `tinyvae sample --seed S --raw` and of the Cortex-M firmware, byte
//! for byte (`--raw`), and the 128x64 frames are those the firmware dumps (`--frames`):
//! scripts/test-firmware.sh runs it under `qemu-aarch64 -cpu cortex-a72` (a Pi 4) and compares.
//! Errors are one line on stderr and exit status 1 (2 for a bad command line).
//!
//! With `--classifier`, a classifier blob (M2's q(y|x), quantized) reads every digit on the
//! device as well: its class goes into the caption, the report and `--classes`.
//!
//! Given an autoencoder blob (an anomaly detector), it scores a stream of feature vectors
//! instead (`anomaly.rs`).

mod anomaly;
mod args;
mod fbdev;
mod sheet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use tinyvae::{Classifier, Decoder, Model, Rng};
use tinyvae_display::Caption;

fn main() -> ExitCode {
    match args::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => match run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(a: args::Args) -> Result<(), String> {
    let name = a.blob.display();
    let bytes = tinyvae::AlignedBlob::new(&std::fs::read(&a.blob).map_err(|e| format!("cannot read {name}: {e}"))?);
    let model = Model::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
    if model.kind() == tinyvae::ModelKind::Autoencoder {
        return anomaly::run(&a, &model);
    }
    if a.vectors.is_some() {
        return Err(format!("{name}: --vectors needs an autoencoder blob; this is a {}", model.kind()));
    }
    let decoder = Decoder::new(&model).map_err(|e| format!("{name}: {e}"))?;
    let meta = model.meta();
    let n = decoder.output_len();
    if meta.width * meta.height != n || n == 0 {
        return Err(format!("{name}: the decoder's output ({n} values) is not a {}x{} image", meta.width, meta.height));
    }
    let classes = decoder.classes() as u32;
    match a.label {
        Some(_) if classes == 0 => {
            return Err(format!("{name}: --label needs a conditional decoder; this one has no label input"))
        }
        Some(l) if l >= classes => return Err(format!("{name}: --label {l} is not one of its {classes} classes")),
        _ => {}
    }

    let mut arena = vec![0u8; model.arena_size()];
    let mut pixels = vec![0u8; a.count as usize * n];
    let mut rng = Rng::new(a.seed);
    let start = Instant::now();
    for (i, digit) in pixels.chunks_exact_mut(n).enumerate() {
        // Labels as `tinyvae sample` gives them: the requested one, or 0, 1, 2, .. in turn.
        let drawn = match (classes, a.label) {
            (0, _) => decoder.sample(&mut rng, &mut arena, digit),
            (_, Some(l)) => decoder.sample_conditional(&mut rng, l, &mut arena, digit),
            (c, None) => decoder.sample_conditional(&mut rng, i as u32 % c, &mut arena, digit),
        };
        drawn.map_err(|e| format!("{name}: {e}"))?;
    }
    let per_digit = start.elapsed().as_secs_f64() * 1e6 / a.count as f64;
    println!(
        "sampled {} digit{} from {name} ({} {}, kernels {}), seed {}: {per_digit:.1} us per digit",
        a.count,
        if a.count == 1 { "" } else { "s" },
        model.precision(),
        model.kind(),
        tinyvae::kernels::best().name,
        a.seed
    );

    let (w, h) = (meta.width as u32, meta.height as u32);
    let digits: Vec<&[u8]> = pixels.chunks_exact(n).collect();
    let mut captions: Vec<Caption> = (0..a.count).map(|i| Caption::new(i, a.seed)).collect();
    if let Some(path) = &a.classifier {
        let requested = |i: usize| match (classes, a.label) {
            (0, _) => None,
            (_, Some(l)) => Some(l),
            (c, None) => Some(i as u32 % c),
        };
        let found = classify(path, &digits, requested)?;
        for (caption, &class) in captions.iter_mut().zip(&found) {
            *caption = caption.with_class(class as u32);
        }
        if let Some(out) = &a.classes {
            write_file(out, &found)?;
            println!("wrote {} classes to {}", found.len(), out.display());
        }
    }
    if let Some(raw) = &a.raw {
        write_file(raw, &pixels)?;
        println!("wrote {} x {n} pixels to {}", a.count, raw.display());
    }
    if a.frames.is_some() || a.terminal {
        let frames: Vec<sheet::OledFrame> =
            digits.iter().zip(&captions).map(|(d, &caption)| sheet::oled_frame(d, w, h, caption)).collect();
        if let Some(path) = &a.frames {
            let bytes: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().iter().copied()).collect();
            write_file(path, &bytes)?;
            println!(
                "wrote {} SSD1306 frames (128x64, {} bytes each) to {}",
                a.count,
                bytes.len() / frames.len(),
                path.display()
            );
        }
        if a.terminal {
            for frame in &frames {
                print!("{}", sheet::frame_as_text(frame));
            }
        }
    }

    let file_name = a.blob.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let title = format!(
        "tinyvae: {} digits from {file_name}, seed {} | SSD1306 128x64 (shown 2x) and ST7735 160x128",
        a.count, a.seed
    );
    let picture = sheet::compose(&digits, &captions, w, h, &title);

    let default_fb = Path::new("/dev/fb0");
    let fb = a.fb.clone().or_else(|| default_fb.exists().then(|| default_fb.to_path_buf()));
    if let Some(device) = &fb {
        let mut screen = fbdev::LinuxFramebuffer::open(device)?;
        screen.show(&picture)?;
        println!("drew {}x{} pixels on {}", picture.width(), picture.height(), screen.describe());
    }
    if a.png.is_some() || fb.is_none() {
        let path = a.png.clone().unwrap_or_else(|| PathBuf::from("digits.png"));
        write_png(&path, &picture)?;
        println!("wrote {}x{} picture to {}", picture.width(), picture.height(), path.display());
    }
    Ok(())
}

/// Classifies every digit with the classifier blob at `path`; prints how long that took, and,
/// where `requested` gives the label a digit was drawn for, how many show it.
fn classify(path: &Path, digits: &[&[u8]], requested: impl Fn(usize) -> Option<u32>) -> Result<Vec<u8>, String> {
    let name = path.display();
    let bytes = tinyvae::AlignedBlob::new(&std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?);
    let model = Model::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let classifier = Classifier::new(&model).map_err(|e| format!("{name}: {e}"))?;
    if let Some(d) = digits.first().filter(|d| d.len() != classifier.input_len()) {
        return Err(format!("{name}: classifies {} values, the digits have {}", classifier.input_len(), d.len()));
    }
    let mut arena = vec![0u8; model.arena_size()];
    let start = Instant::now();
    let mut found = Vec::with_capacity(digits.len());
    for digit in digits {
        let class = classifier.classify_pixels(digit, &mut arena).map_err(|e| format!("{name}: {e}"))?;
        // A class past 255 cannot be written as a byte: no MNIST-like classifier has one.
        found.push(u8::try_from(class).map_err(|_| format!("{name}: class {class} does not fit a byte"))?);
    }
    let per_digit = start.elapsed().as_secs_f64() * 1e6 / digits.len() as f64;
    let shown: Vec<String> = found.iter().map(|c| c.to_string()).collect();
    println!("classified by {name} ({}): {per_digit:.1} us per digit: {}", model.precision(), shown.join(" "));
    let asked: Vec<(u32, u8)> = (0..digits.len()).filter_map(|i| requested(i).map(|l| (l, found[i]))).collect();
    if !asked.is_empty() {
        let hits = asked.iter().filter(|(l, c)| *l == *c as u32).count();
        println!(
            "  {hits} of {} show the requested label ({:.1} %)",
            asked.len(),
            100.0 * hits as f64 / asked.len() as f64
        );
    }
    Ok(found)
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = temporary_name(path);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn write_png(path: &Path, canvas: &sheet::Canvas) -> Result<(), String> {
    let mut encoded = Vec::new();
    let mut encoder = png::Encoder::new(&mut encoded, canvas.width(), canvas.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(canvas.rgb()))
        .map_err(|e| format!("cannot encode {}: {e}", path.display()))?;
    write_file(path, &encoded)
}

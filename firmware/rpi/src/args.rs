//! The command line: a few flags, parsed by hand to keep the program's dependencies to the
//! runtime, the drawing code and a PNG encoder.

use std::path::PathBuf;

pub const USAGE: &str = "usage: tinyvae-rpi [BLOB.tvae] [--count N] [--seed S] [--label L] [--classifier BLOB] [--classes FILE] [--raw FILE] [--frames FILE] [--png FILE] [--fb DEVICE] [--terminal]
       tinyvae-rpi AUTOENCODER.tvae --vectors FILE [--threshold RAW] [--scores FILE]

Samples N digits from a decoder blob with the runtime's PRNG and shows them: on the Linux
framebuffer (--fb, default /dev/fb0 when it exists), otherwise in a PNG (--png, default
digits.png). The same seed gives the same pixels as `tinyvae sample` and the Cortex-M firmware.

  BLOB.tvae       decoder blob (default models/mnist-vae-z20/decoder.int8.tvae)
  --count N       digits to sample (default 8)
  --seed S        seed of the runtime's PRNG (default 1)
  --label L       the digit to draw, for conditional decoders (CVAE, M2); without it they
                  cycle 0, 1, 2, .. as `tinyvae sample` does
  --classifier C  a classifier blob (e.g. models/mnist-m2/classifier.int8.tvae): classify each
                  digit on the device, show its class in the caption and report how many
                  show the requested label (conditional decoders)
  --classes FILE  write the classes, one byte per digit (needs --classifier)
  --raw FILE      write the decoded pixels, N x 784 bytes
  --frames FILE   write the 128x64 SSD1306 frames, N x 1024 bytes (page layout)
  --png FILE      write the picture to FILE (also when a framebuffer is used)
  --fb DEVICE     framebuffer device (default /dev/fb0 if present)
  --terminal      also print each 128x64 frame as text

With an autoencoder blob (an anomaly detector) it scores feature vectors instead:
  --vectors FILE  raw little-endian f32 vectors, the blob's input length each
  --threshold RAW alarm above this raw score (`tinyvae deploy --threshold-data` chooses one;
                  default: no alarms)
  --scores FILE   write every raw score, little-endian u64, as `tinyvae score --raw` does";

/// What the user asked for.
#[derive(Debug)]
pub struct Args {
    pub blob: PathBuf,
    pub count: u32,
    pub seed: u64,
    pub label: Option<u32>,
    pub classifier: Option<PathBuf>,
    pub classes: Option<PathBuf>,
    pub raw: Option<PathBuf>,
    pub frames: Option<PathBuf>,
    pub png: Option<PathBuf>,
    pub fb: Option<PathBuf>,
    pub terminal: bool,
    pub vectors: Option<PathBuf>,
    pub threshold: u64,
    pub scores: Option<PathBuf>,
}

/// `Ok(None)` for `--help`.
pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        blob: PathBuf::from("models/mnist-vae-z20/decoder.int8.tvae"),
        count: 8,
        seed: 1,
        label: None,
        classifier: None,
        classes: None,
        raw: None,
        frames: None,
        png: None,
        fb: None,
        terminal: false,
        vectors: None,
        threshold: u64::MAX,
        scores: None,
    };
    let mut blob_given = false;
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value (see --help)"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--count" => a.count = number(&value("--count")?, "--count")?,
            "--seed" => a.seed = number(&value("--seed")?, "--seed")?,
            "--label" => a.label = Some(number(&value("--label")?, "--label")?),
            "--classifier" => a.classifier = Some(value("--classifier")?.into()),
            "--classes" => a.classes = Some(value("--classes")?.into()),
            "--raw" => a.raw = Some(value("--raw")?.into()),
            "--frames" => a.frames = Some(value("--frames")?.into()),
            "--png" => a.png = Some(value("--png")?.into()),
            "--fb" => a.fb = Some(value("--fb")?.into()),
            "--terminal" => a.terminal = true,
            "--vectors" => a.vectors = Some(value("--vectors")?.into()),
            "--threshold" => a.threshold = number(&value("--threshold")?, "--threshold")?,
            "--scores" => a.scores = Some(value("--scores")?.into()),
            f if f.starts_with('-') => return Err(format!("unknown flag {f} (see --help)")),
            blob if !blob_given => {
                a.blob = blob.into();
                blob_given = true;
            }
            extra => return Err(format!("unexpected argument {extra}: one blob only (see --help)")),
        }
    }
    if a.count == 0 {
        return Err("--count must be at least 1".into());
    }
    if a.classes.is_some() && a.classifier.is_none() {
        return Err("--classes needs --classifier".into());
    }
    Ok(Some(a))
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag}: `{text}` is not a valid number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_and_defaults() {
        let a = args("m.tvae --count 3 --seed 9 --label 7 --raw r --terminal").unwrap().unwrap();
        assert_eq!((a.blob.to_str(), a.count, a.seed, a.label, a.terminal), (Some("m.tvae"), 3, 9, Some(7), true));
        assert_eq!(a.raw.as_deref().and_then(|p| p.to_str()), Some("r"));
        let d = args("").unwrap().unwrap();
        assert_eq!((d.count, d.seed, d.png.is_none()), (8, 1, true));
        assert!(args("--help").unwrap().is_none());
        let v = args("ad.tvae --vectors v.f32 --threshold 42 --scores s.raw").unwrap().unwrap();
        assert_eq!((v.threshold, v.vectors.is_some(), v.scores.is_some()), (42, true, true));
        assert_eq!(d.threshold, u64::MAX);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(args("--count").unwrap_err().contains("--count needs a value"));
        assert!(args("--count x").unwrap_err().contains("not a valid number"));
        assert!(args("--count 0").unwrap_err().contains("at least 1"));
        assert!(args("--bogus").unwrap_err().contains("unknown flag --bogus"));
        assert!(args("a b").unwrap_err().contains("one blob only"));
        assert!(args("--classes c").unwrap_err().contains("--classes needs --classifier"));
        let c = args("d.tvae --classifier c.tvae --classes k").unwrap().unwrap();
        assert_eq!(c.classifier.as_deref().and_then(|p| p.to_str()), Some("c.tvae"));
    }
}

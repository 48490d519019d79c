//! An encoder and the graph that reads its code joined into one graph: a decoder, for a whole
//! autoencoder (x -> code -> x̂), the form an anomaly detector is deployed in; or a classifier
//! of codes, for M1+M2's image classifier (x -> M1's code -> class logits). One blob, one
//! arena, one call per input.

use std::collections::HashSet;

use super::{Graph, GraphError, Role};

/// Why an encoder and a decoder cannot be joined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComposeError {
    /// A conditional encoder or decoder takes a label, which an anomaly detector does not have.
    #[error("the {which} takes {inputs} inputs; only unconditional encoders and decoders (one input) join")]
    Conditional {
        /// "encoder" or "decoder".
        which: &'static str,
        /// Its inputs.
        inputs: usize,
    },
    /// The encoder's code does not have the width the next graph takes.
    #[error("the encoder's first output `{code}` has {codes} values but the {which} takes {latent}")]
    Width {
        /// "decoder" or "classifier".
        which: &'static str,
        /// The encoder output used as the code.
        code: String,
        /// Its width.
        codes: usize,
        /// The next graph's input width.
        latent: usize,
    },
    /// The decoder does not give back the encoder's input length.
    #[error("the decoder gives {output} values per sample but the encoder takes {input}")]
    Length {
        /// Encoder input width.
        input: usize,
        /// Decoder output width.
        output: usize,
    },
    /// One of the graphs is inconsistent.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl Graph {
    /// `decoder(encoder(x))` as one graph of role [`Role::Autoencoder`]. The code is the
    /// encoder's first output: mu for a VAE (the reconstruction of its mean code, the usual
    /// anomaly score), z for a deterministic encoder; the nodes only other outputs need (a
    /// VAE's log-variance head) are left out. The decoder's values are renamed under
    /// `decoder/` so the two graphs' names cannot collide.
    pub fn autoencoder(encoder: &Graph, decoder: &Graph) -> Result<Graph, ComposeError> {
        let g = Self::chain(encoder, decoder, "decoder", Role::Autoencoder)?;
        let (input, output) = (encoder.inputs[0].len, decoder.output_len(0)?);
        if output != input {
            return Err(ComposeError::Length { input, output });
        }
        Ok(g)
    }

    /// `classifier(encoder(x))` as one graph of role [`Role::Classifier`]: M1+M2's image
    /// classifier, M2's q(y|x) reading M1's mean code. As [`Graph::autoencoder`] for the code
    /// and the names (`classifier/`).
    pub fn classifier_of_codes(encoder: &Graph, classifier: &Graph) -> Result<Graph, ComposeError> {
        let classes = classifier.output_len(0)?;
        Self::chain(encoder, classifier, "classifier", Role::Classifier { classes })
    }

    /// `next(encoder(x))`: the encoder nodes its first output needs, then `next`'s nodes with
    /// its values renamed under `{which}/` and its input read from that output.
    fn chain(encoder: &Graph, next: &Graph, which: &'static str, role: Role) -> Result<Graph, ComposeError> {
        for (name, g) in [("encoder", encoder), (which, next)] {
            if g.inputs.len() != 1 {
                return Err(ComposeError::Conditional { which: name, inputs: g.inputs.len() });
            }
        }
        let code = encoder.outputs.first().ok_or(GraphError::NoOutput { index: 0 })?.clone();
        let codes = encoder.value_lens()?[&code];
        let latent = next.inputs[0].len;
        // A fused [mu | logvar] output holds the code in its first half; the IR has no slice,
        // so only an output of exactly the next graph's width joins.
        if codes != latent {
            return Err(ComposeError::Width { which, code, codes, latent });
        }

        // The encoder nodes the code depends on, found backwards from it.
        let mut needed: HashSet<&str> = HashSet::from([code.as_str()]);
        let mut keep = vec![false; encoder.nodes.len()];
        for (i, n) in encoder.nodes.iter().enumerate().rev() {
            if needed.contains(n.output.as_str()) {
                keep[i] = true;
                needed.extend(n.inputs.iter().map(String::as_str));
            }
        }
        let mut nodes: Vec<_> = encoder.nodes.iter().zip(&keep).filter(|(_, &k)| k).map(|(n, _)| n.clone()).collect();
        let rename = |v: &str| if v == next.inputs[0].name { code.clone() } else { format!("{which}/{v}") };
        for n in &next.nodes {
            let mut n = n.clone();
            n.name = format!("{which}/{}", n.name);
            n.inputs = n.inputs.iter().map(|v| rename(v)).collect();
            n.output = rename(&n.output);
            nodes.push(n);
        }
        let g = Graph { inputs: encoder.inputs.clone(), nodes, outputs: vec![rename(&next.outputs[0])], role };
        g.value_lens()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};

    use super::*;
    use crate::ir::{Input, Node, Op};

    fn dense(name: &str, input: &str, output: &str, rows: usize, cols: usize, seed: f32) -> Node {
        Node {
            name: name.into(),
            op: Op::Dense {
                weight: Array2::from_shape_fn((rows, cols), |(r, c)| ((r * 7 + c * 3) as f32 * seed).sin()),
                bias: Array1::from_shape_fn(rows, |r| r as f32 * 0.01),
            },
            inputs: vec![input.into()],
            output: output.into(),
        }
    }

    fn vae_pair() -> (Graph, Graph) {
        let encoder = Graph {
            inputs: vec![Input { name: "x".into(), len: 6 }],
            nodes: vec![
                dense("h", "x", "h", 4, 6, 0.3),
                dense("mu", "h", "mu", 2, 4, 0.5),
                dense("logvar", "h", "logvar", 2, 4, 0.7),
            ],
            outputs: vec!["mu".into(), "logvar".into()],
            role: Role::Encoder { latent: 2, classes: 0 },
        };
        // The decoder's names overlap the encoder's (`h`), as two exports' may.
        let decoder = Graph {
            inputs: vec![Input { name: "z".into(), len: 2 }],
            nodes: vec![
                dense("h", "z", "h", 4, 2, 0.9),
                dense("out", "h", "logits", 6, 4, 1.1),
                Node {
                    name: "sigmoid".into(),
                    op: Op::Sigmoid,
                    inputs: vec!["logits".into()],
                    output: "x_mean".into(),
                },
            ],
            outputs: vec!["x_mean".into()],
            role: Role::Decoder { latent: 2, classes: 0, bernoulli: true },
        };
        (encoder, decoder)
    }

    #[test]
    fn the_whole_autoencoder_computes_the_decoder_of_the_encoders_mean() {
        let (encoder, decoder) = vae_pair();
        let ae = Graph::autoencoder(&encoder, &decoder).unwrap();
        assert_eq!(ae.role, Role::Autoencoder);
        // The log-variance head is left out.
        assert!(ae.nodes.iter().all(|n| n.name != "logvar"), "{:?}", ae.nodes);
        let x = Array2::from_shape_fn((3, 6), |(i, j)| (i * 6 + j) as f32 / 18.0);
        let mu = encoder.eval(&[x.view()]).unwrap().remove(0);
        let want = decoder.eval(&[mu.view()]).unwrap().remove(0);
        let got = ae.eval(&[x.view()]).unwrap().remove(0);
        assert_eq!(got, want);
    }

    #[test]
    fn mismatched_graphs_are_refused_with_the_reason() {
        let (encoder, decoder) = vae_pair();
        let mut wide = decoder.clone();
        wide.inputs[0].len = 3;
        assert!(matches!(Graph::autoencoder(&encoder, &wide), Err(ComposeError::Width { codes: 2, latent: 3, .. })));
        let mut conditional = decoder.clone();
        conditional.inputs.push(Input { name: "label".into(), len: 10 });
        assert!(matches!(Graph::autoencoder(&encoder, &conditional), Err(ComposeError::Conditional { .. })));
        let mut short = encoder.clone();
        short.inputs[0].len = 5;
        short.nodes[0] = dense("h", "x", "h", 4, 5, 0.3);
        let e = Graph::autoencoder(&short, &decoder).unwrap_err();
        assert_eq!(e, ComposeError::Length { input: 5, output: 6 });
    }
}

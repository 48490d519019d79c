//! One module per subcommand.

pub mod bench;
pub mod classify;
pub mod compose;
pub mod data;
pub mod deploy;
pub mod deploy_c;
pub mod eval_anomaly;
pub mod eval_ssl;
pub mod figure;
pub mod fit_prior;
pub mod inspect;
pub mod quantize;
pub mod sample;
pub mod score;
pub mod train;
pub mod validate;

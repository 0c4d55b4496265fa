//! The subcommands.

mod diff;
mod inspect;
mod interop;
mod model;
mod pack;
mod shard;
mod sign;
mod validate;

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};

use crate::{Failure, Outcome};

/// The subcommands of `nnb`.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Pack a folder written by `unpack`, or a YAML graph and weights (.safetensors or .npz), into a bundle.
    #[command(after_help = "Examples:\n  nnb pack mlp/ -o mlp.nnb\n  \
                      nnb pack mlp.yaml mlp.safetensors -o mlp.nnb --meta epochs=10 --meta author=ada\n  \
                      nnb pack mlp.yaml checkpoint.safetensors --strip-prefix model. -o mlp.nnb")]
    Pack {
        /// A folder written by `nnb unpack`, or the graph (long form or the sequential shorthand).
        source: PathBuf,
        /// With a graph file: the weights, a .safetensors or .npz file whose names are the graph's parameters.
        weights: Option<PathBuf>,
        /// The bundle to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Metadata KEY=VALUE; VALUE is read as YAML (3 is an integer, 0.1 a float, [a, b] a list).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// Store a sample input NAME=FILE.npy with the outputs the model computes from it.
        #[arg(long = "sample", value_name = "NAME=FILE.npy")]
        sample: Vec<String>,
        /// Relative tolerance for the samples.
        #[arg(long, default_value_t = 1e-5)]
        rtol: f64,
        /// Absolute tolerance for the samples.
        #[arg(long, default_value_t = 1e-6)]
        atol: f64,
        /// Remove PREFIX from the front of every weight name that has it (`model.hidden.weight` -> `hidden.weight`).
        #[arg(long, value_name = "PREFIX")]
        strip_prefix: Option<String>,
    },
    /// Write everything a bundle holds to a folder that `pack` turns back into the same bundle.
    #[command(after_help = "The folder:\n  \
                      graph.yaml           the graph, byte for byte (absent for tensors-only bundles)\n  \
                      weights.safetensors  every stored tensor once, for any safetensors reader\n  \
                      manifest.yaml        metadata, groups, aliases (tied weights), samples, tolerances\n\n\
                      `nnb pack DIR -o x.nnb` gives the same bundle digest, and the same bytes for a\n\
                      bundle nnbundle wrote; edit the files in between and pack hashes them again.\n\n\
                      Example:\n  nnb unpack mlp.nnb -o mlp/")]
    Unpack {
        /// The bundle.
        bundle: PathBuf,
        /// The folder to write into (created if needed).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show a bundle's versions, digests, metadata, layers and tensors, without reading tensor data.
    #[command(
        after_help = "Example:\n  nnb inspect mlp.nnb\n  nnb inspect mlp.nnb --json\n  nnb inspect https://example.com/models/mlp.nnb"
    )]
    Inspect {
        /// The bundle: a file, or a URL (http(s)://, s3://, gs://, az://; credentials from the environment).
        bundle: PathBuf,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Check everything: container, manifest, graph, weights against the graph, hashes, samples.
    #[command(
        after_help = "Exit codes: 0 valid, 1 invalid, 2 unreadable (I/O).\n\nExample:\n  nnb validate mlp.nnb\n  nnb validate mlp.nnb --json > report.json"
    )]
    Validate {
        /// The bundle: a file, or a URL (http(s)://, s3://, gs://, az://; credentials from the environment).
        bundle: PathBuf,
        /// Print the JSON report (its schema: `nnb schema report`).
        #[arg(long)]
        json: bool,
        /// Skip the SHA-256 checks of the tensors.
        #[arg(long)]
        no_hash: bool,
        /// Also require a signature by this public key (PEM) that covers the bundle, as `nnb verify` does.
        #[arg(long, value_name = "PUB.pem")]
        key: Option<PathBuf>,
    },
    /// Sign a bundle: add or replace `signatures/<NAME>.sigstore.json`, an OpenSSF Model Signing v1.0 signature.
    #[command(
        after_help = "The signature is a Sigstore bundle over an in-toto statement listing every other entry with
                      the SHA-256 of its bytes. `model_signing verify key DIR --signature
                      DIR/signatures/NAME.sigstore.json --public-key PUB.pem` accepts it after `unzip -d DIR`.
                      Signing changes no other byte: the bundle digest stays, other signatures stay, and
                      signing again with the same key and name gives the same file.

                      Keys: unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), ECDSA P-256 (deterministic, RFC 6979)
                      or Ed25519 (model_signing verifies EC keys only). Make one with
                        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem
                        openssl pkey -in key.pem -pubout -out pub.pem

                      --attach stores a signature `model_signing sign` made over the unzipped bundle
                      (`--ignore-paths signatures`), keyless Sigstore ones included. `nnb verify` checks key
                      signatures only: certificate identities (--certificate-identity, --oidc-issuer) are out of
                      scope; verify keyless signatures with `model_signing verify sigstore`.

                      Examples:
  nnb sign model.nnb --key key.pem
  nnb sign model.nnb --key key.pem --name release
                        nnb sign model.nnb --key key.pem --sidecar model.nnb.sig
  nnb sign model.nnb --attach model.sig"
    )]
    Sign {
        /// The bundle (rewritten in place, atomically, unless --sidecar).
        bundle: PathBuf,
        /// The private key (PKCS#8 PEM, P-256 or Ed25519).
        #[arg(long, value_name = "KEY.pem", required_unless_present = "attach")]
        key: Option<PathBuf>,
        /// The signature's name (default: `key-` and 16 hex digits of the key's hint).
        #[arg(long)]
        name: Option<String>,
        /// Leave the bundle as it is and write a detached signature over the whole file to this path.
        #[arg(long, value_name = "FILE", conflicts_with = "attach")]
        sidecar: Option<PathBuf>,
        /// Store this signature file (made by `model_signing sign`) as given; takes no key.
        #[arg(long, value_name = "FILE", conflicts_with = "key")]
        attach: Option<PathBuf>,
    },
    /// Split a bundle into standalone shard bundles plus an index that opens like the original.
    #[command(after_help = "Writes DIR/<bundle's file name>, the index (graph, metadata, every tensor's record and\n\
                      the shard table: each shard's file, size and bundle digest), and the shards\n\
                      DIR/<stem>-00001-of-0000N.nnb, each a valid bundle of at most the size asked plus\n\
                      about 1 MiB of headers (a tensor larger than that gets a shard of its own; tensors are\n\
                      never split). Every command opens the index like the original bundle, and checks each\n\
                      shard's size and digest at open. The same bundle and size give the same files.\n\n\
                      Example:\n  nnb shard model.nnb --max-shard-size 2GiB -o sharded/\n  nnb merge sharded/model.nnb -o model.nnb")]
    Shard {
        /// The bundle.
        bundle: PathBuf,
        /// Largest shard: bytes, or with KiB, MiB, GiB, TiB (1024s) or KB, MB, GB, TB (1000s).
        #[arg(long, value_name = "SIZE")]
        max_shard_size: String,
        /// The folder to write (created; it must hold nothing else).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
    },
    /// Merge an index bundle and its shards back into one bundle (the original bytes).
    #[command(after_help = "Example:\n  nnb merge sharded/model.nnb -o model.nnb")]
    Merge {
        /// The index bundle.
        index: PathBuf,
        /// The bundle to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check that a signature by a public key covers exactly the bundle's current entries.
    #[command(after_help = "Exit codes: 0 when one signature by the key covers every entry with matching SHA-256
                      digests; 1 otherwise (another key, no signature, a damaged signature, a changed, added
                      or missing entry), naming the entry or the reason; 2 for usage and I/O errors.

                      Examples:
  nnb verify model.nnb --key pub.pem
  nnb verify model.nnb --key pub.pem --signature model.nnb.sig")]
    Verify {
        /// The bundle: a file, or a URL (http(s)://, s3://, gs://, az://; credentials from the environment).
        bundle: PathBuf,
        /// The public key (SubjectPublicKeyInfo PEM, P-256 or Ed25519).
        #[arg(long, value_name = "PUB.pem")]
        key: PathBuf,
        /// Verify this detached signature (from `nnb sign --sidecar`) over the whole file instead.
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Run a bundle's model on .npy inputs; with --repeat, time it.
    #[command(after_help = "With --repeat N, the model runs once to warm up, then N times more, timed:\n\
                      min, median and p90 latency, and runs per second, with the thread count\n\
                      (compare with onnxruntime's session.run on the same inputs).\n\n\
                      Examples:\n  nnb run mlp.nnb --input X=x.npy -o out/\n  \
                      nnb run resnet.nnb --input input=x.npy --repeat 50 --threads 1")]
    Run {
        /// The bundle: a file, or a URL (http(s)://, s3://, gs://, az://; credentials from the environment).
        bundle: PathBuf,
        /// An input NAME=FILE.npy (repeat for each graph input).
        #[arg(short, long = "input", value_name = "NAME=FILE.npy", required = true)]
        input: Vec<String>,
        /// Write each output to `DIR/<output>.npy`.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
        /// Time N warm runs after a first one: latency min, median, p90, and throughput.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        repeat: Option<u32>,
        /// Threads to run on (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Compare two bundles: graph (nodes, attributes) and tensors (by digest). Exit 0 only when equal.
    #[command(after_help = "Example:\n  nnb diff ckpt-100.nnb ckpt-200.nnb")]
    Diff {
        /// The first bundle.
        a: PathBuf,
        /// The second bundle.
        b: PathBuf,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Write the part of a bundle's graph that computes the given nodes, with only the weights it needs.
    #[command(after_help = "Example:\n  nnb extract mlp.nnb --until relu -o first-layers.nnb")]
    Extract {
        /// The bundle: a file, or a URL (http(s)://, s3://, gs://, az://; credentials from the environment).
        bundle: PathBuf,
        /// The nodes to keep as outputs (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        until: Vec<String>,
        /// The bundle to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Draw a bundle's graph as SVG (no external programs), Graphviz dot or Mermaid.
    #[command(after_help = "Boxes show each node's op, the attributes that differ from their defaults and the\n\
                      parameter shapes; edges show the shape of the value they carry; colours are op\n\
                      families (legend at the top). --collapse folds each numbered block of nodes\n\
                      (`encoder.layers.3.*`) into one box.\n\n\
                      Examples:\n  nnb render mlp.nnb -o mlp.svg\n  nnb render mlp.nnb --format mermaid\n  \
                      nnb render bert.nnb --collapse -o bert.svg")]
    Render {
        /// The bundle (or a graph .yaml).
        bundle: PathBuf,
        /// The file to write; standard output when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The format (default: from the output's extension, else svg).
        #[arg(long, value_enum)]
        format: Option<RenderFormat>,
        /// Fold every block of nodes named `<prefix>.<number>.*` into one box.
        #[arg(long)]
        collapse: bool,
    },
    /// Print a JSON Schema: the graph document, the manifest, the validation report, a signature or its statement.
    #[command(after_help = "Example:\n  nnb schema graph > graph.schema.json")]
    Schema {
        /// Which schema.
        #[arg(value_enum, default_value_t = SchemaKind::Graph)]
        kind: SchemaKind,
    },
    /// Import an ONNX model (opsets 6 to 25) built from the vocabulary's counterparts.
    #[command(after_help = "Examples:\n  nnb import model.onnx -o model.nnb\n  nnb import model.onnx --dry-run\n  \
                      nnb import detector.onnx --input-shape images=1,3,640,640 --outputs scores -o detector.nnb\n  \
                      nnb import vad.onnx --input-value sr=16000 -o vad.nnb")]
    Import {
        /// The ONNX model (self-contained; external data files are refused).
        model: PathBuf,
        /// The bundle to write (not needed with --dry-run).
        #[arg(short, long, required_unless_present = "dry_run")]
        output: Option<PathBuf>,
        /// Fix every dimension of an input, by its ONNX name: NAME=d0,d1,... (repeatable).
        #[arg(long, value_name = "NAME=D0,D1,...")]
        input_shape: Vec<String>,
        /// Pin a scalar input to a constant, by its ONNX name: NAME=VALUE (repeatable).
        #[arg(long, value_name = "NAME=VALUE")]
        input_value: Vec<String>,
        /// Keep only these ONNX outputs and the nodes they need (comma-separated).
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        outputs: Vec<String>,
        /// Report what would be imported, or why not, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export a bundle's model to another format (ONNX, opset 17).
    #[command(after_help = "Example:\n  nnb export model.nnb --to onnx -o model.onnx")]
    Export {
        /// The bundle: a file, or a URL (http(s)://, s3://, gs://, az://; credentials from the environment).
        bundle: PathBuf,
        /// The target format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Onnx)]
        to: ExportFormat,
        /// The file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Manage the sample inputs and expected outputs stored in a bundle.
    #[command(subcommand)]
    Samples(SamplesCommand),
}

/// Subcommands of `nnb samples`.
#[derive(Subcommand)]
pub(crate) enum SamplesCommand {
    /// Run the model on inputs and store them with its outputs, so `validate` re-checks them.
    #[command(after_help = "Example:\n  nnb samples add mlp.nnb --input X=x.npy --rtol 1e-5")]
    Add {
        /// The bundle (rewritten atomically).
        bundle: PathBuf,
        /// An input NAME=FILE.npy (repeat for each graph input).
        #[arg(short, long = "input", value_name = "NAME=FILE.npy", required = true)]
        input: Vec<String>,
        /// Relative tolerance.
        #[arg(long, default_value_t = 1e-5)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = 1e-6)]
        atol: f64,
    },
}

/// Formats `nnb export` writes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// ONNX, opset 17.
    Onnx,
}

/// Output formats of `render`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RenderFormat {
    /// Scalable vector graphics, viewable in a browser.
    Svg,
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Schemas `nnb schema` prints.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemaKind {
    /// The graph document (graph.yaml).
    Graph,
    /// The manifest (manifest.yaml).
    Manifest,
    /// The JSON report of `nnb validate --json`.
    Report,
    /// A signature file (`signatures/<name>.sigstore.json`, a Sigstore bundle).
    Signature,
    /// The in-toto statement a signature signs.
    Statement,
}

impl Command {
    /// Whether the command was asked for JSON output (then failures print a JSON error too).
    pub(crate) fn wants_json(&self) -> bool {
        match self {
            Command::Inspect { json, .. }
            | Command::Validate { json, .. }
            | Command::Run { json, .. }
            | Command::Diff { json, .. }
            | Command::Verify { json, .. } => *json,
            _ => false,
        }
    }
}

/// The error for a graph file that does not parse or check: names the file, lists every problem.
/// Opens a bundle from a local path or from a URL (`http(s)://`, `s3://`,
/// `gs://`, `az://`, credentials from the environment).
pub(crate) fn open_bundle(location: &Path) -> Result<nnbundle_container::Bundle, nnbundle_container::ContainerError> {
    match url_of(location) {
        Some(url) => nnbundle_container::Bundle::open_url(url),
        None => nnbundle_container::Bundle::open(location),
    }
}

/// `location` as a URL, when it is one (`scheme://...` of a store).
pub(crate) fn url_of(location: &Path) -> Option<&str> {
    location.to_str().filter(|s| nnbundle_container::is_url(s))
}

pub(crate) fn invalid_graph(path: &Path, report: impl std::fmt::Display) -> Failure {
    Failure::Bad(anyhow::anyhow!("`{}` is not a valid graph:\n{report}", path.display()))
}

/// Reads and parses a graph YAML file.
pub(crate) fn read_graph(path: &Path) -> Result<nnbundle_graph::Graph, Failure> {
    let yaml = std::fs::read(path).map_err(|e| anyhow::anyhow!(e).context(format!("read `{}`", path.display())))?;
    nnbundle_graph::Graph::from_yaml(&yaml).map_err(|report| invalid_graph(path, report))
}

/// Runs a subcommand.
pub(crate) fn run(command: Command) -> Outcome {
    match command {
        Command::Pack { source, weights, output, meta, sample, rtol, atol, strip_prefix } => {
            pack::pack(&pack::PackArgs {
                source: &source,
                weights: weights.as_deref(),
                output: &output,
                meta: &meta,
                samples: &sample,
                rtol,
                atol,
                strip_prefix: strip_prefix.as_deref(),
            })
        }
        Command::Unpack { bundle, output } => pack::unpack(&bundle, &output),
        Command::Inspect { bundle, json } => inspect::inspect(&bundle, json),
        Command::Validate { bundle, json, no_hash, key } => {
            let key = key.as_deref().map(sign::verifying_key).transpose()?;
            validate::validate(&bundle, json, no_hash, key)
        }
        Command::Sign { bundle, key, name, sidecar, attach } => sign::sign(&sign::SignArgs {
            bundle: &bundle,
            key: key.as_deref(),
            name: name.as_deref(),
            sidecar: sidecar.as_deref(),
            attach: attach.as_deref(),
        }),
        Command::Verify { bundle, key, signature, json } => sign::verify(&bundle, &key, signature.as_deref(), json),
        Command::Shard { bundle, max_shard_size, output } => shard::shard(&bundle, &max_shard_size, &output),
        Command::Merge { index, output } => shard::merge(&index, &output),
        Command::Run { bundle, input, output, json, repeat, threads } => model::run(&model::RunArgs {
            bundle: &bundle,
            inputs: &input,
            out_dir: output.as_deref(),
            json,
            repeat,
            threads: threads.map(usize::from),
        }),
        Command::Diff { a, b, json } => diff::diff(&a, &b, json),
        Command::Extract { bundle, until, output } => model::extract(&bundle, &until, &output),
        Command::Render { bundle, output, format, collapse } => {
            model::render(&bundle, output.as_deref(), format, collapse)
        }
        Command::Schema { kind } => validate::schema(kind),
        Command::Import { model, output, input_shape, input_value, outputs, dry_run } => {
            let options = interop::import_options(&input_shape, &input_value, outputs)?;
            interop::import(&model, output.as_deref().filter(|_| !dry_run), &options)
        }
        Command::Export { bundle, to: ExportFormat::Onnx, output } => interop::export(&bundle, &output),
        Command::Samples(SamplesCommand::Add { bundle, input, rtol, atol }) => {
            model::add_samples(&bundle, &input, rtol, atol)
        }
    }
}

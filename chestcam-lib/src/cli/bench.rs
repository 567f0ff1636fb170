//! `chestcam bench`: training, inference and CAM against PyTorch.
use crate::emit;
use chestcam::choice::device_name;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size[:train,val,test[:seed]]], or a MedMNIST-format npz: its first --batch training images (all, when it has fewer) are the batch.
    #[arg(long)]
    data: String,
    /// Time the batch at this image size (28, 64, 224, ...): the images are resized by nearest neighbour, and the stem is the default for that size.
    #[arg(long)]
    size: Option<usize>,
    /// Images per batch, for training steps, inference and CAM maps.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// CPU threads, the same for both sides.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Untimed runs of each row before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs of each row; the table gives their median.
    #[arg(long, default_value_t = 6)]
    reps: usize,
    /// Folder for the batch, the shared initial weights and the PyTorch side's files.
    #[arg(long, default_value = "out/bench")]
    out: PathBuf,
    /// The Python that runs the PyTorch side (torch 2.11.0; pytorch-grad-cam 1.5.7 for the CAM and ROAD rows).
    #[arg(long, default_value = "python")]
    python: String,
    /// The PyTorch side's script.
    #[arg(long, default_value = "scripts/bench_pytorch.py")]
    script: PathBuf,
    /// Images for the Score-CAM timing (it runs 512 forwards per image).
    #[arg(long, default_value_t = 8)]
    score_batch: usize,
    /// Images for the ROAD row (14 labels each, against pytorch-grad-cam); 0 skips it.
    #[arg(long, default_value_t = 128)]
    road_images: usize,
    /// Also time every other CAM method's 14 calls in pytorch-grad-cam
    /// against chestcam's one call (once each; minutes on a CPU).
    #[arg(long)]
    all_methods: bool,
    /// auto, cpu, cuda or cuda:N: where both sides run (auto: CUDA when present).
    #[arg(long, default_value = "cpu", value_parser = device_name)]
    device: String,
}

/// Runs `chestcam bench`.
pub(crate) fn run(a: BenchArgs) -> chestcam::Result<()> {
    let o = chestcam::bench::BenchOptions {
        data: a.data,
        size: a.size,
        batch: a.batch,
        threads: a.threads,
        warmup: a.warmup,
        reps: a.reps,
        out: a.out,
        python: a.python,
        script: a.script,
        score_batch: a.score_batch,
        road_images: a.road_images,
        device: a.device,
        all_methods: a.all_methods,
    };
    let report = chestcam::bench::run(&o, &chestcam::progress::auto_steps)?;
    emit(&report.text)?;
    // Printed apart, after the main table: a capture that fails
    // badly cannot take the table with it.
    emit(&chestcam::bench::graph_rows(&o, &report)?)?;
    emit(&chestcam::bench::cam_parity_rows(&o)?)?;
    emit(&chestcam::bench::cam_graph_rows(&o)?)?;
    Ok(())
}

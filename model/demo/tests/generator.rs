//! The generator is deterministic: the same seed gives the same scenes, prompts and pixels, pinned by golden
//! hashes, and a written data set is byte-identical across runs.

use omnigen_demo::{
    fnv1a, prompt, render, write_dataset, DatasetSpec, Sample, Split, Task, HELD_OUT,
};

/// Pixel hashes of the outputs (and first inputs) of samples 0..4 of seed 2026, one per task.
const GOLDEN: [(u64, Option<u64>); 4] = [
    (0x9F9E_B719_3FD9_BA8D, None),
    (0x6A2E_9CEA_69F9_0BF7, Some(0xE5EF_D6E9_73CC_9A7D)),
    (0x7729_A589_8751_EEB5, Some(0xF7BE_B70F_0DA1_C60C)),
    (0xB1D2_9446_44E1_38FC, Some(0x7AEE_D23E_445A_4D53)),
];

fn hashes() -> Vec<(u64, Option<u64>)> {
    Task::ALL
        .iter()
        .enumerate()
        .map(|(i, &task)| {
            let s = Sample::generate(2026, i as u64, task, Split::Train);
            let (inputs, output) = s.render(64);
            (
                fnv1a(output.as_raw()),
                inputs.first().map(|i| fnv1a(i.as_raw())),
            )
        })
        .collect()
}

#[test]
fn pictures_match_their_golden_hashes() {
    assert_eq!(hashes(), GOLDEN, "the generator's pictures changed");
}

#[test]
fn the_same_seed_gives_the_same_samples_and_another_seed_others() {
    for task in Task::ALL {
        for i in 0..50 {
            let a = Sample::generate(1, i, task, Split::Train);
            assert_eq!(a, Sample::generate(1, i, task, Split::Train));
            assert_eq!(
                a.render(64),
                Sample::generate(1, i, task, Split::Train).render(64)
            );
        }
    }
    let differ = (0..50)
        .filter(|&i| {
            Sample::generate(1, i, Task::T2i, Split::Train)
                != Sample::generate(2, i, Task::T2i, Split::Train)
        })
        .count();
    assert!(differ > 45, "{differ}");
}

#[test]
fn text_to_image_instructions_are_the_target_prompts() {
    for i in 0..100 {
        let s = Sample::generate(3, i, Task::T2i, Split::Heldout);
        assert_eq!(s.instruction, prompt::text_to_image(&s.target));
        assert!(s.inputs.is_empty());
        assert!(HELD_OUT.contains(&(s.target.shape, s.target.colour)));
    }
    // Every image task names its one input with the first placeholder, once.
    for task in [Task::Edit, Task::Subject, Task::Outline] {
        let s = Sample::generate(3, 0, task, Split::Train);
        assert_eq!(s.inputs.len(), 1);
        assert_eq!(
            s.instruction.matches(prompt::IMAGE_1).count(),
            1,
            "{}",
            s.instruction
        );
    }
}

#[test]
fn a_written_data_set_is_byte_identical_across_runs() {
    let spec = DatasetSpec {
        seed: 4,
        count: 8,
        tasks: Task::ALL.to_vec(),
        split: Split::Train,
        size: 64,
    };
    let dirs = [tmp("a"), tmp("b")];
    for d in &dirs {
        let w = write_dataset(&spec, d).expect("writes");
        assert_eq!((w.samples, w.images), (8, 14));
    }
    for rel in [
        "train.jsonl",
        "train.scenes.jsonl",
        "train/000000.png",
        "train/000003_in1.png",
    ] {
        let a = std::fs::read(dirs[0].join(rel)).expect(rel);
        let b = std::fs::read(dirs[1].join(rel)).expect(rel);
        assert_eq!(a, b, "{rel}");
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_render_is_the_size_asked_for() {
    let s = Sample::generate(1, 0, Task::T2i, Split::Train);
    assert_eq!(render(&s.target, 96).dimensions(), (96, 96));
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("omnigen-demo-gen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

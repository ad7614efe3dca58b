//! The comparison rule itself (no GPU): both scales of the one formula, NaN and infinity
//! handling, the reference's bit-for-bit rule.

use wgtrain::verify::{Report, Scale, Tolerance};
use wgtrain::Cpu;

use crate::common::Test;

pub fn tests() -> Vec<Test> {
    vec![
        Test::cpu("within_tolerance_passes_and_outside_fails_at_the_first_bad_index", within_tolerance_passes_and_outside_fails),
        Test::cpu("relative_part_scales_with_the_reference", relative_part_scales_with_the_reference),
        Test::cpu("relative_to_max_scales_with_the_largest_reference", relative_to_max_scales_with_the_largest_reference),
        Test::cpu("nan_and_infinity_mismatches_always_fail", nan_and_infinity_mismatches_always_fail),
        Test::cpu("length_mismatch_fails", || assert!(!Tolerance::EXACT.compare(&[1.0], &[1.0, 2.0]).passed())),
        Test::cpu("the_reference_against_itself_must_be_identical", the_reference_against_itself_must_be_identical),
    ]
}

fn within_tolerance_passes_and_outside_fails() {
    let t = Tolerance::new(1e-3, 0.0);
    assert!(t.compare(&[1.0, 2.0], &[1.0005, 2.0]).passed());
    let c = t.compare(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.1, 3.0, 4.5]);
    assert!(!c.passed());
    assert_eq!(c.failures, 2);
    assert_eq!(c.first_bad.map(|b| b.0), Some(1));
    assert!((c.max_abs - 0.5).abs() < 1e-12);
    assert!((c.allowed - 1e-3).abs() < 1e-9);
}

fn relative_part_scales_with_the_reference() {
    let t = Tolerance::new(0.0, 1e-3);
    assert!(t.compare(&[1000.5], &[1000.0]).passed());
    assert!(!t.compare(&[1.5], &[1.0]).passed());
}

/// The case-file rule: an error of 0.05 near zero passes when the tensor's largest value is
/// 100 (rtol 1e-3 of 100 = 0.1), and fails under the element rule.
fn relative_to_max_scales_with_the_largest_reference() {
    let t = Tolerance::relative_to_max(0.0, 1e-3);
    assert_eq!(t.scale, Scale::TensorMax);
    let (got, want) = ([0.05f32, 100.0], [0.0f32, 100.0]);
    let c = t.compare(&got, &want);
    assert!(c.passed(), "{c:?}");
    assert!((c.allowed - 0.1).abs() < 1e-6, "{c:?}");
    assert!(!Tolerance::new(0.0, 1e-3).compare(&got, &want).passed());
    assert!(!t.compare(&[0.2f32, 100.0], &want).passed());
    assert!(t.to_string().contains("max"), "{t}");
}

fn nan_and_infinity_mismatches_always_fail() {
    for loose in [Tolerance::new(1e9, 1e9), Tolerance::relative_to_max(1e9, 1e9)] {
        assert!(!loose.compare(&[f32::NAN], &[1.0]).passed());
        assert!(!loose.compare(&[1.0], &[f32::NAN]).passed());
        assert!(!loose.compare(&[f32::INFINITY], &[1.0]).passed());
        assert!(!loose.compare(&[f32::INFINITY], &[f32::NEG_INFINITY]).passed());
        assert!(loose.compare(&[f32::NAN, f32::INFINITY], &[f32::NAN, f32::INFINITY]).passed());
    }
}

/// Checked against itself, the CPU gets no slack: one ulp apart fails, though EXACT allows it.
fn the_reference_against_itself_must_be_identical() {
    let (got, want) = ([1.0f32 + f32::EPSILON], [1.0f32]);
    assert!(Tolerance::EXACT.compare(&got, &want).passed());
    let r = Report::new(&Cpu, "op".into(), "[1]".into(), Tolerance::EXACT, &got, &want);
    assert_eq!(r.tolerance, Tolerance::IDENTICAL);
    assert!(!r.passed(), "{r}");
    assert!(Report::new(&Cpu, "op".into(), "[1]".into(), Tolerance::EXACT, &want, &want).passed());
}

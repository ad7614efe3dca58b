//! The comparison rule itself (no GPU).

use wgtrain::verify::Tolerance;

#[test]
fn within_tolerance_passes_and_outside_fails_at_the_first_bad_index() {
    let t = Tolerance::new(1e-3, 0.0);
    assert!(t.compare(&[1.0, 2.0], &[1.0005, 2.0]).passed());
    let c = t.compare(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.1, 3.0, 4.5]);
    assert!(!c.passed());
    assert_eq!(c.failures, 2);
    assert_eq!(c.first_bad.map(|b| b.0), Some(1));
    assert!((c.max_abs - 0.5).abs() < 1e-6);
}

#[test]
fn relative_part_scales_with_the_reference() {
    let t = Tolerance::new(0.0, 1e-3);
    assert!(t.compare(&[1000.5], &[1000.0]).passed());
    assert!(!t.compare(&[1.5], &[1.0]).passed());
}

#[test]
fn nan_and_infinity_mismatches_always_fail() {
    let loose = Tolerance::new(1e9, 1e9);
    assert!(!loose.compare(&[f32::NAN], &[1.0]).passed());
    assert!(!loose.compare(&[1.0], &[f32::NAN]).passed());
    assert!(!loose.compare(&[f32::INFINITY], &[1.0]).passed());
    assert!(!loose.compare(&[f32::INFINITY], &[f32::NEG_INFINITY]).passed());
    assert!(loose.compare(&[f32::NAN, f32::INFINITY], &[f32::NAN, f32::INFINITY]).passed());
}

#[test]
fn length_mismatch_fails() {
    assert!(!Tolerance::EXACT.compare(&[1.0], &[1.0, 2.0]).passed());
}

"""Which face of an enrollment photo is enrolled, and why a photo is rejected."""

from __future__ import annotations

from facerec.v1 import face_pb2, facerec_pb2
from facerec_gateway.enrollment import QualityPolicy, choose_face, face_id

POLICY = QualityPolicy(min_face_size_px=20, min_sharpness=0.6, min_frontality=0.3)
SINGLE = facerec_pb2.FACE_SELECTION_UNSPECIFIED
LARGEST = facerec_pb2.FACE_SELECTION_LARGEST


def _face(size: float = 120, sharpness: float = 2.5, frontality: float = 0.9, x: int = 0) -> face_pb2.Face:
    return face_pb2.Face(
        box=face_pb2.BoundingBox(x=x, y=0, width=int(size), height=int(size)),
        quality=face_pb2.FaceQuality(face_size_px=size, sharpness=sharpness, frontality=frontality),
    )


def _reasons(faces: list[face_pb2.Face], selection: int = SINGLE) -> list[int]:
    return [r.reason for r in choose_face(faces, POLICY, selection).rejections]  # type: ignore[arg-type]


def test_photo_with_one_good_face_enrolls_it() -> None:
    face = _face()
    choice = choose_face([face], POLICY, SINGLE)
    assert choice.face == face and choice.rejections == []


def test_photo_without_a_face_is_rejected_as_no_face() -> None:
    assert _reasons([]) == [facerec_pb2.NO_FACE]


def test_photo_with_two_good_faces_is_rejected_unless_the_largest_is_asked_for() -> None:
    big, small = _face(200), _face(100, x=300)
    assert _reasons([big, small]) == [facerec_pb2.MULTIPLE_FACES]
    assert choose_face([big, small], POLICY, LARGEST).face == big


def test_small_blurry_and_turned_faces_are_rejected_with_each_reason() -> None:
    assert _reasons([_face(size=16)]) == [facerec_pb2.FACE_TOO_SMALL]
    assert _reasons([_face(sharpness=0.3)]) == [facerec_pb2.FACE_TOO_BLURRY]
    assert _reasons([_face(frontality=0.2)]) == [facerec_pb2.FACE_NOT_FRONTAL]
    assert _reasons([_face(size=16, sharpness=0.3)]) == [facerec_pb2.FACE_TOO_SMALL, facerec_pb2.FACE_TOO_BLURRY]


def test_each_rejection_names_its_measure_the_value_and_the_minimum() -> None:
    rejections = choose_face([_face(size=17.4, sharpness=0.31, frontality=0.25)], POLICY, SINGLE).rejections

    assert [r.message.split(",")[0] for r in rejections] == [
        "face size is 17.4 px",
        "face sharpness is 0.31",
        "face frontality is 0.25",
    ]
    assert "the minimum is 20 px" in rejections[0].message
    assert "the minimum is 0.60" in rejections[1].message
    assert "the minimum is 0.30" in rejections[2].message


def test_measures_at_the_minimums_are_accepted() -> None:
    assert _reasons([_face(size=20, sharpness=0.6, frontality=0.3)]) == []


def test_a_tiny_background_face_does_not_make_a_photo_multi_face() -> None:
    main, background = _face(150), _face(12, x=400)
    assert choose_face([main, background], POLICY, SINGLE).face == main


def test_face_ids_are_deterministic_and_distinguish_person_photo_and_face() -> None:
    face = _face()
    first = face_id("c", "ann", b"photo-bytes", face)
    assert first == face_id("c", "ann", b"photo-bytes", face)
    assert first != face_id("c", "bob", b"photo-bytes", face)
    assert first != face_id("c", "ann", b"other-photo", face)
    assert first != face_id("c", "ann", b"photo-bytes", _face(x=10))

"""The seed's two workflows end to end through the gateway on the real stack: real Triton binary, real model,
embedded Qdrant, real photos (PyPI's face-recognition 1.3.0 test images)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from facerec.sdk import AsyncClient, FailedPrecondition, InvalidArgument, NotFound
from tests.e2e.photos import faceless, side_by_side


def new_collection() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def obama_enrolled(alpha: AsyncClient, samples_dir: Path) -> str:
    collection = new_collection()
    await alpha.create_collection(collection)
    result = await alpha.enroll("obama", samples_dir / "obama.jpg", collection=collection, display_name="Barack Obama")
    assert result.faces_enrolled == 1
    return collection


async def test_enrolled_person_is_identified_in_another_photo(alpha, obama_enrolled, samples_dir) -> None:
    result = await alpha.identify(samples_dir / "obama2.jpg", collection=obama_enrolled)
    assert len(result.faces) == 1
    match = result.faces[0].match
    assert match is not None and match.person_id == "obama"
    assert match.display_name == "Barack Obama"
    assert match.distance < 0.6 and match.similarity > 0.5


async def test_someone_not_enrolled_is_unknown(alpha, obama_enrolled, samples_dir) -> None:
    result = await alpha.identify(samples_dir / "biden.jpg", collection=obama_enrolled)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.match is None
    assert face.candidates and face.candidates[0].person_id == "obama"
    assert face.candidates[0].distance > 0.6 and face.candidates[0].similarity < 0.5


async def test_two_face_photo_gives_two_results(alpha, obama_enrolled, samples_dir) -> None:
    photo = side_by_side(samples_dir / "obama3.jpg", samples_dir / "biden.jpg")
    result = await alpha.identify(photo, collection=obama_enrolled)
    assert len(result.faces) == 2
    left, right = sorted(result.faces, key=lambda f: f.face.box.x)
    assert left.match is not None and left.match.person_id == "obama"
    assert right.match is None


async def test_one_identity_per_photo_when_two_faces_match_the_same_person(alpha, obama_enrolled, samples_dir) -> None:
    photo = side_by_side(samples_dir / "obama2.jpg", samples_dir / "obama3.jpg")
    result = await alpha.identify(photo, collection=obama_enrolled)
    assert len(result.faces) == 2
    assert all(f.candidates[0].person_id == "obama" and f.candidates[0].distance < 0.6 for f in result.faces)
    matched = [f for f in result.faces if f.match is not None]
    assert len(matched) == 1, "a person is given to one face of a photo only"
    assert matched[0].match.distance == min(f.candidates[0].distance for f in result.faces)


async def test_enrolling_the_same_photo_twice_stores_it_once(alpha, obama_enrolled, samples_dir) -> None:
    again = await alpha.enroll("obama", samples_dir / "obama.jpg", collection=obama_enrolled)
    assert again.person.face_count == 1
    assert (await alpha.get_collection(obama_enrolled)).face_count == 1


async def test_photo_without_a_face_is_refused_and_nothing_is_enrolled(alpha, samples_dir) -> None:
    collection = new_collection()
    await alpha.create_collection(collection)
    with pytest.raises(FailedPrecondition) as refused:
        await alpha.enroll("nobody", [samples_dir / "obama.jpg", faceless()], collection=collection)
    assert [r.reason for r in refused.value.rejections] == ["NO_FACE"]
    assert refused.value.rejections[0].photo_index == 1
    with pytest.raises(NotFound):
        await alpha.get_person("nobody", collection=collection)
    assert (await alpha.get_collection(collection)).face_count == 0


async def test_photo_with_several_faces_is_refused_unless_the_largest_is_asked_for(alpha, samples_dir) -> None:
    collection = new_collection()
    await alpha.create_collection(collection)
    group = side_by_side(samples_dir / "obama.jpg", samples_dir / "biden.jpg")
    with pytest.raises(FailedPrecondition) as refused:
        await alpha.enroll("group", group, collection=collection)
    assert [r.reason for r in refused.value.rejections] == ["MULTIPLE_FACES"]
    result = await alpha.enroll("group", group, collection=collection, face_selection="largest")
    assert result.faces_enrolled == 1


async def test_garbage_bytes_are_an_invalid_argument(alpha) -> None:
    with pytest.raises(InvalidArgument):
        await alpha.identify(b"not an image at all")


async def test_verify_photo_against_photo_and_against_an_enrolled_person(alpha, obama_enrolled, samples_dir) -> None:
    same = await alpha.verify(samples_dir / "obama2.jpg", reference_image=samples_dir / "obama3.jpg")
    assert same.same_person and same.distance < 0.6
    different = await alpha.verify(samples_dir / "biden.jpg", reference_image=samples_dir / "obama.jpg")
    assert not different.same_person and different.distance > 0.6
    enrolled = await alpha.verify(samples_dir / "obama2.jpg", person=(obama_enrolled, "obama"))
    assert enrolled.same_person and enrolled.reference_face_id
    impostor = await alpha.verify(samples_dir / "biden.jpg", person=(obama_enrolled, "obama"))
    assert not impostor.same_person


async def test_verify_probe_without_a_face_is_a_failed_precondition(alpha, samples_dir) -> None:
    with pytest.raises(FailedPrecondition):
        await alpha.verify(faceless(), reference_image=samples_dir / "obama.jpg")


async def test_detect_returns_boxes_landmarks_and_quality(alpha, samples_dir) -> None:
    result = await alpha.detect(side_by_side(samples_dir / "obama.jpg", samples_dir / "biden.jpg"))
    assert len(result.faces) == 2
    for face in result.faces:
        assert face.box.width > 40 and face.quality.frontality > 0.5 and face.quality.sharpness > 0
        assert face.embedding is None
        eyes_x = (face.landmarks.left_eye_outer.x + face.landmarks.right_eye_outer.x) / 2
        assert face.box.x < eyes_x < face.box.x + face.box.width


async def test_people_are_listed_updated_and_erased(alpha, samples_dir) -> None:
    collection = new_collection()
    await alpha.create_collection(collection)
    await alpha.enroll("obama", [samples_dir / "obama.jpg", samples_dir / "obama3.jpg"], collection=collection)
    await alpha.enroll("biden", samples_dir / "biden.jpg", collection=collection)
    page = await alpha.list_people(collection=collection, page_size=1)
    assert [p.person_id for p in page.items] == ["biden"] and page.next_page_token
    updated = await alpha.update_person("obama", collection=collection, display_name="B. Obama", metadata={"team": "a"})
    assert updated.display_name == "B. Obama" and updated.metadata == {"team": "a"} and updated.face_count == 2
    assert await alpha.delete_person("obama", collection=collection) == 2
    with pytest.raises(NotFound):
        await alpha.get_person("obama", collection=collection)
    after = await alpha.identify(samples_dir / "obama2.jpg", collection=collection)
    assert all(c.person_id != "obama" for f in after.faces for c in f.candidates), "erased faces never come back"
    assert [p.person_id for p in (await alpha.list_people(collection=collection)).items] == ["biden"]


async def test_bulk_enroll_streams_people_and_reports_rejected_photos(alpha, samples_dir) -> None:
    collection = new_collection()
    await alpha.create_collection(collection)
    result = await alpha.bulk_enroll(
        [
            ("obama", [samples_dir / "obama.jpg", samples_dir / "obama3.jpg"]),
            ("biden", [samples_dir / "biden.jpg", faceless()]),
        ],
        collection=collection,
    )
    assert (result.requests, result.photos, result.faces_enrolled, result.people_enrolled) == (2, 4, 3, 2)
    assert [(r.person_id, r.photo.photo_index) for r in result.rejected] == [("biden", 1)]


async def test_identify_stream_answers_every_frame_in_order(alpha, obama_enrolled, samples_dir) -> None:
    frames = [samples_dir / "obama2.jpg", samples_dir / "biden.jpg", samples_dir / "obama3.jpg"]
    results = [r async for r in alpha.identify_stream(frames, collection=obama_enrolled)]
    assert [r.frame_id for r in results] == ["0", "1", "2"]
    decided = [r.faces[0].match.person_id if r.faces[0].match else None for r in results]
    assert decided == ["obama", None, "obama"]


async def test_default_collection_is_created_on_first_use(gamma, samples_dir) -> None:
    await gamma.enroll("obama", samples_dir / "obama.jpg")
    assert (await gamma.get_collection("default")).face_count == 1
    assert (await gamma.identify(samples_dir / "obama2.jpg")).faces[0].match.person_id == "obama"


async def test_verify_against_a_person_compares_with_that_persons_faces_only(alpha, samples_dir) -> None:
    collection = new_collection()
    await alpha.create_collection(collection)
    obama = await alpha.enroll("obama", samples_dir / "obama.jpg", collection=collection)
    await alpha.enroll("biden", samples_dir / "biden.jpg", collection=collection)
    result = await alpha.verify(samples_dir / "biden.jpg", person=(collection, "obama"))
    assert not result.same_person and result.distance > 0.6
    assert result.reference_face_id == obama.photos[0].face_id

"""Handlers of the ``facerec`` commands that talk to the gateway: each takes a :class:`Client` and the parsed
arguments, prints its result (a table, or one JSON document with ``--json``) and returns the exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerec.calibration import calibrate as calibrate_descriptors
from facerec.cli import exit_codes, output
from facerec.cli.calibrate import calibration_json, describe, render_calibration
from facerec.cli.importer import ImportReport, ensure_collection, run_import, scan
from facerec.sdk import Client, FaceSelection, FailedPrecondition


def _emit(args: argparse.Namespace, document: object, human: str) -> None:
    if args.json:
        output.print_json(document)
    else:
        print(human)


def _metadata(pairs: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict (argparse has checked the form)."""
    return dict(pair.split("=", 1) for pair in pairs or [])


def enroll(client: Client, args: argparse.Namespace) -> int:
    """``facerec enroll PERSON_ID PHOTO...``"""
    try:
        result = client.enroll(
            args.person_id,
            [Path(p) for p in args.photos],
            collection=args.collection,
            display_name=args.name,
            metadata=_metadata(args.meta),
            face_selection=FaceSelection.LARGEST if args.largest else FaceSelection.SINGLE,
        )
    except FailedPrecondition as e:
        # Say which of the caller's files failed and why, before the generic error line.
        rejections = output.render_rejections(e, [Path(p).name for p in args.photos])
        if rejections and not args.json:
            print(rejections, file=sys.stderr)
        raise
    _emit(args, output.to_json(result), output.render_enroll(result))
    return exit_codes.OK


def identify(client: Client, args: argparse.Namespace) -> int:
    """``facerec identify PHOTO``"""
    result = client.identify(
        Path(args.photo),
        collection=args.collection,
        top_k=args.top_k,
        threshold=args.threshold,
        include_embeddings=args.embeddings,
        min_margin=args.min_margin,
    )
    _emit(args, output.to_json(result), output.render_identify(result))
    return exit_codes.OK


def verify(client: Client, args: argparse.Namespace) -> int:
    """``facerec verify PHOTO (--reference PHOTO | --person PERSON_ID)``"""
    result = client.verify(
        Path(args.photo),
        reference_image=Path(args.reference) if args.reference else None,
        person=(args.collection, args.person) if args.person else None,
        threshold=args.threshold,
    )
    _emit(args, output.to_json(result), output.render_verify(result))
    return exit_codes.OK


def detect(client: Client, args: argparse.Namespace) -> int:
    """``facerec detect PHOTO``"""
    result = client.detect(Path(args.photo), include_embeddings=args.embeddings)
    _emit(args, output.to_json(result), output.render_detect(result))
    return exit_codes.OK


def people_list(client: Client, args: argparse.Namespace) -> int:
    """``facerec people list``: every person of the collection."""
    people = list(client.iter_people(collection=args.collection, page_size=args.page_size))
    _emit(args, {"people": output.to_json(people)}, output.render_people(people))
    return exit_codes.OK


def people_show(client: Client, args: argparse.Namespace) -> int:
    """``facerec people show PERSON_ID``"""
    person = client.get_person(args.person_id, collection=args.collection)
    _emit(args, output.to_json(person), output.render_person(person))
    return exit_codes.OK


def people_update(client: Client, args: argparse.Namespace) -> int:
    """``facerec people update PERSON_ID [--name N] [--meta K=V]...``"""
    person = client.update_person(
        args.person_id,
        collection=args.collection,
        display_name=args.name,
        metadata=_metadata(args.meta),
        replace_metadata=args.replace_metadata,
    )
    _emit(args, output.to_json(person), output.render_person(person))
    return exit_codes.OK


def people_delete(client: Client, args: argparse.Namespace) -> int:
    """``facerec people delete PERSON_ID``: erases every face of the person."""
    deleted = client.delete_person(args.person_id, collection=args.collection)
    document = {"person_id": args.person_id, "collection": args.collection, "faces_deleted": deleted}
    _emit(args, document, f"deleted {args.person_id} from {args.collection}: {deleted} face(s)")
    return exit_codes.OK


def faces_list(client: Client, args: argparse.Namespace) -> int:
    """``facerec faces list PERSON_ID``: every face of the person, with its photo, time, quality and box."""
    faces = list(client.iter_faces(args.person_id, collection=args.collection, page_size=args.page_size))
    document = {"person_id": args.person_id, "collection": args.collection, "faces": output.to_json(faces)}
    _emit(args, document, output.render_faces(faces))
    return exit_codes.OK


def faces_delete(client: Client, args: argparse.Namespace) -> int:
    """``facerec faces delete FACE_ID``: deletes one face; the person keeps their others."""
    deletion = client.delete_face(args.face_id, collection=args.collection)
    document = {"face_id": args.face_id, "collection": args.collection, **output.to_json(deletion)}
    _emit(args, document, output.render_face_deletion(args.face_id, args.collection, deletion))
    return exit_codes.OK


def faces_move(client: Client, args: argparse.Namespace) -> int:
    """``facerec faces move FACE_ID --to PERSON_ID``: gives one face to another person."""
    move = client.move_face(args.face_id, args.to_person_id, collection=args.collection)
    _emit(args, {"collection": args.collection, **output.to_json(move)}, output.render_face_move(args.collection, move))
    return exit_codes.OK


def audit(client: Client, args: argparse.Namespace) -> int:
    """``facerec audit [--since WHEN] [--collection NAME]``: the tenant's audit record, oldest first."""
    events = list(client.iter_audit_events(since=args.since, collection=args.collection, page_size=args.page_size))
    _emit(args, {"events": output.to_json(events)}, output.render_audit(events))
    return exit_codes.OK


def collections_create(client: Client, args: argparse.Namespace) -> int:
    """``facerec collections create NAME [--threshold T] [--target-fpir F] [--min-margin M] [--retention D]``"""
    collection = client.create_collection(
        args.name,
        threshold=args.threshold,
        target_fpir=args.target_fpir,
        min_margin=args.min_margin,
        retention_seconds=args.retention,
    )
    _emit(args, output.to_json(collection), output.render_collection(collection))
    return exit_codes.OK


def collections_update(client: Client, args: argparse.Namespace) -> int:
    """``facerec collections update NAME [--threshold T] [--target-fpir F] [--min-margin M] [--retention D]``"""
    if args.threshold is None and args.target_fpir is None and args.min_margin is None and args.retention is None:
        print(
            "facerec: collections update needs --threshold, --target-fpir or --min-margin (decision settings), "
            "or --retention",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    collection = client.update_collection(
        args.name,
        threshold=args.threshold,
        target_fpir=args.target_fpir,
        min_margin=args.min_margin,
        retention_seconds=args.retention,
    )
    _emit(args, output.to_json(collection), output.render_collection(collection))
    return exit_codes.OK


def collections_calibrate(client: Client, args: argparse.Namespace) -> int:
    """``facerec collections calibrate NAME [--target-fmr F] [--apply]``: on the collection's own faces."""
    calibration = client.calibrate_collection(args.name, target_fmr=args.target_fmr, apply=args.apply)
    _emit(args, output.to_json(calibration), output.render_collection_calibration(args.name, calibration))
    return exit_codes.OK


def calibrate(client: Client, args: argparse.Namespace) -> int:
    """``facerec calibrate DIR [--target-fmr F] [--collection NAME --apply]``: every genuine and impostor pair of
    the labelled photos ``DIR/<person>/<photos>``; ``--apply`` sets the threshold as the collection's fixed one."""
    root = Path(args.dir)
    folder = scan(root)
    for skipped in folder.skipped:
        print(f"facerec: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    described = describe(client, folder, root)
    for name in described.no_face:
        print(f"facerec: no face in {name}", file=sys.stderr)
    for refused in described.refused:
        print(f"facerec: {refused.path} refused: {refused.reason}", file=sys.stderr)
    try:
        result = calibrate_descriptors(described.descriptors, described.labels, args.target_fmr)
    except ValueError as error:
        print(f"facerec: cannot calibrate on {args.dir}: {error}", file=sys.stderr)
        return exit_codes.USAGE
    applied_to = None
    if args.apply:
        client.update_collection(args.collection, threshold=result.threshold, target_fpir=0.0)
        applied_to = args.collection
    document = calibration_json(result, described, folder.skipped, applied_to)
    _emit(args, document, render_calibration(result, described, applied_to))
    return exit_codes.OK


def collections_list(client: Client, args: argparse.Namespace) -> int:
    """``facerec collections list``"""
    collections = client.list_collections()
    _emit(args, {"collections": output.to_json(collections)}, output.render_collections(collections))
    return exit_codes.OK


def collections_show(client: Client, args: argparse.Namespace) -> int:
    """``facerec collections show NAME``"""
    collection = client.get_collection(args.name)
    _emit(args, output.to_json(collection), output.render_collection(collection))
    return exit_codes.OK


def collections_delete(client: Client, args: argparse.Namespace) -> int:
    """``facerec collections delete NAME``: deletes the collection with every face in it."""
    deleted = client.delete_collection(args.name)
    _emit(args, {"collection": args.name, "faces_deleted": deleted}, f"deleted {args.name}: {deleted} face(s)")
    return exit_codes.OK


def import_folder(client: Client, args: argparse.Namespace) -> int:
    """``facerec import DIR``: enrolls every ``DIR/<person>/`` folder not yet complete (BulkEnroll streams).

    Every skipped file is named on stderr; the summary is printed even when a stream breaks (then the exit code
    is the error's).
    """
    folder = scan(Path(args.dir))
    for skipped in folder.skipped:
        print(f"facerec: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if not folder.people:
        message = f"no photos to import in {args.dir} (DIR/<person>/<photo>); {len(folder.skipped)} file(s) skipped"
        if args.json:
            output.print_json(
                {"error": {"code": "NO_PHOTOS", "message": message}, "skipped_files": output.to_json(folder.skipped)}
            )
        print(f"facerec: {message}", file=sys.stderr)
        return exit_codes.USAGE
    created = ensure_collection(client, args.collection, create=args.create)
    report = ImportReport(directory=args.dir, collection=args.collection, created=created, skipped_files=folder.skipped)
    selection = FaceSelection.LARGEST if args.largest else FaceSelection.SINGLE
    run_import(client, folder, report, face_selection=selection, resend=args.resend)
    _emit(args, output.import_json(report), output.render_import(report))
    if report.interrupted:
        print("facerec: interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    if report.error is not None:
        print(f"facerec: {report.error}", file=sys.stderr)
        return exit_codes.exit_code_for(report.error)
    rejected = report.result is not None and bool(report.result.rejected)
    return exit_codes.REJECTED if args.strict and (rejected or folder.skipped) else exit_codes.OK

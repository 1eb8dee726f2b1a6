"""``facerec``: the command line of the facerec face-recognition service.

Talks to the gateway (``--gateway HOST:PORT``, env ``FACEREC_GATEWAY``, default 127.0.0.1:50051) with an API
key (``--api-key``, env ``FACEREC_API_KEY``), in plaintext unless ``--tls`` (the system trust store) or
``--ca-file PEM`` asks for TLS; ``--client-cert`` / ``--client-key`` for mutual TLS (env ``FACEREC_TLS``,
``FACEREC_CA_FILE``, ``FACEREC_CLIENT_CERT``, ``FACEREC_CLIENT_KEY``). Every command takes ``--json`` to print
one JSON document instead of a table. Exit codes (see :mod:`facerec.cli.exit_codes`): 0 ok, 1 other service
error, 2 usage error or unreadable file, 3 not found, 4 rejected (enrollment refused), 5 unauthenticated /
permission denied, 6 unavailable / deadline exceeded / not serving.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TypeAlias

import grpc

from facerec import limits
from facerec.cli import cluster as cluster_cli
from facerec.cli import commands, exit_codes, output, stack
from facerec.cli.durations import parse_duration, parse_since
from facerec.cli.health import DEFAULT_HEALTH_TIMEOUT_S, check_health, health_exit_code, rpc_error_exit_code
from facerec.cli.tls_hints import ClientTls, tls_hint
from facerec.photo_formats import ACCEPTED_NAMES
from facerec.sdk import Client, FacerecError, ImageInputError, Unavailable
from facerec.sdk.channel import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, channel_credentials

Handler = Callable[[Client, argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def main(argv: list[str] | None = None) -> int:
    """Runs one ``facerec`` command and returns its exit code (argparse exits with 2 on a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "health":
        return run_health(args)
    if getattr(args, "standalone", None) is not None:  # commands that need no gateway client (up)
        code: int = args.standalone(args)
        return code
    if getattr(args, "apply", False) and args.command == "calibrate" and not args.collection:
        parser.error("calibrate --apply needs --collection NAME")
    handler: Handler = args.handler
    try:
        with _client(args) as client:
            return handler(client, args)
    except FacerecError as e:
        if args.json:
            output.print_json(output.error_json(e))
        print(f"facerec: {e}", file=sys.stderr)
        _print_tls_hint(e.message if isinstance(e, Unavailable) else "", args)
        return exit_codes.exit_code_for(e)
    except (OSError, ImageInputError) as e:
        print(f"facerec: {e}", file=sys.stderr)
        return exit_codes.exit_code_for(e)
    except KeyboardInterrupt:
        print("facerec: interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials when ``--tls``, ``--ca-file`` or ``--client-cert`` is given, else None (plaintext)."""
    return channel_credentials(
        tls=args.tls, ca_file=args.ca_file, client_cert_file=args.client_cert, client_key_file=args.client_key
    )


def _print_tls_hint(message: str, args: argparse.Namespace) -> None:
    hint = tls_hint(message, ClientTls(args.tls, args.ca_file, args.client_cert))
    if hint is not None:
        print(f"facerec: {hint}", file=sys.stderr)


def _client(args: argparse.Namespace) -> Client:
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT_S
    return Client(args.gateway, args.api_key, credentials=_credentials(args), timeout=timeout)


def run_health(args: argparse.Namespace) -> int:
    """``facerec health``: 0 when the service reports SERVING."""
    address = args.address or args.gateway
    timeout = args.timeout if args.timeout is not None else DEFAULT_HEALTH_TIMEOUT_S
    try:
        status = check_health(address, args.service, timeout=timeout, credentials=_credentials(args))
    except OSError as e:
        print(f"facerec: {e}", file=sys.stderr)
        return exit_codes.USAGE
    except grpc.RpcError as e:
        code = e.code().name if isinstance(e, grpc.Call) else "UNKNOWN"
        message = e.details() if isinstance(e, grpc.Call) else str(e)
        if args.json:
            output.print_json(
                {"address": address, "service": args.service, "error": {"code": code, "message": message}}
            )
        print(f"facerec: health check of {address} failed: {code}: {message}", file=sys.stderr)
        _print_tls_hint(message or "", args)
        return rpc_error_exit_code(e)
    if args.json:
        output.print_json({"address": address, "service": args.service, "status": status})
    else:
        print(f"{address} {args.service or '(server)'}: {status}")
    return health_exit_code(status)


# ---------------------------------------------------------------------------------------------- parser


def _metadata_pair(text: str) -> str:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def _connection_flags(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """The global flags. Repeated on every command with SUPPRESS defaults, so they work before or after the
    command's name without a command's absent flag resetting the global one."""

    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=default(os.environ.get("FACEREC_GATEWAY", DEFAULT_ADDRESS)),
        help="gateway address (env FACEREC_GATEWAY; default %(default)s)" if top_level else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--api-key",
        default=default(os.environ.get("FACEREC_API_KEY")),
        help="API key, sent as 'authorization: Bearer KEY' (env FACEREC_API_KEY)" if top_level else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=default(None),
        help=f"deadline of each call (default {DEFAULT_TIMEOUT_S:g}; health: {DEFAULT_HEALTH_TIMEOUT_S:g})"
        if top_level
        else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=default(os.environ.get("FACEREC_TLS", "").strip().lower() in ("1", "true", "yes", "on")),
        help="connect with TLS, trusting the system's CA store (env FACEREC_TLS=1)" if top_level else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        default=default(os.environ.get("FACEREC_CA_FILE") or None),
        help="connect with TLS, trusting the CAs of this PEM bundle instead (env FACEREC_CA_FILE)"
        if top_level
        else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--client-cert",
        metavar="PEM",
        default=default(os.environ.get("FACEREC_CLIENT_CERT") or None),
        help="mutual TLS: present this certificate, with --client-key (env FACEREC_CLIENT_CERT)"
        if top_level
        else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--client-key",
        metavar="PEM",
        default=default(os.environ.get("FACEREC_CLIENT_KEY") or None),
        help="private key of --client-cert (env FACEREC_CLIENT_KEY)" if top_level else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print one JSON document instead of a table"
    )


def _command(
    subparsers: Subparsers, name: str, help_text: str, handler: Handler | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text, description=help_text)
    _connection_flags(parser, top_level=False)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def _collection_flag(parser: argparse.ArgumentParser, help_text: str = "created on first use") -> None:
    parser.add_argument(
        "--collection", default="default", metavar="NAME", help=f"collection (default %(default)s; {help_text})"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``facerec`` argument parser (environment defaults are read when it is built)."""
    parser = argparse.ArgumentParser(
        prog="facerec",
        description="Command line of the facerec face-recognition service.",
        epilog=exit_codes.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_flags(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_face_commands(subparsers)
    _add_people_commands(subparsers)
    _add_faces_commands(subparsers)
    _add_audit_command(subparsers)
    _add_collection_commands(subparsers)
    _add_import_command(subparsers)
    _add_cluster_command(subparsers)
    _add_calibrate_command(subparsers)
    _add_health_command(subparsers)
    stack.register(subparsers)
    return parser


def _add_face_commands(subparsers: Subparsers) -> None:
    enroll = _command(subparsers, "enroll", "enroll photos of one person", commands.enroll)
    enroll.add_argument("person_id", metavar="PERSON_ID")
    enroll.add_argument("photos", metavar="PHOTO", nargs="+")
    enroll.add_argument("--name", metavar="DISPLAY_NAME", help="the person's display name")
    enroll.add_argument(
        "--meta", metavar="KEY=VALUE", action="append", type=_metadata_pair, help="metadata (repeatable)"
    )
    enroll.add_argument(
        "--largest", action="store_true", help="take each photo's largest face instead of refusing photos with several"
    )
    _collection_flag(enroll)

    identify = _command(subparsers, "identify", "tell who each face of a photo is", commands.identify)
    identify.add_argument("photo", metavar="PHOTO")
    identify.add_argument("--top-k", type=int, default=0, metavar="K", help="candidates per face (default 5)")
    identify.add_argument(
        "--threshold", type=_checked(limits.check_threshold), metavar="T", help="a fixed threshold for this call"
    )
    identify.add_argument(
        "--min-margin",
        type=_checked(limits.check_min_margin),
        metavar="M",
        help="minimum margin for this call (nearest vs second-nearest person; 0: none)",
    )
    identify.add_argument("--embeddings", action="store_true", help="include each face's descriptor (JSON)")
    _collection_flag(identify)

    verify = _command(subparsers, "verify", "is the face of PHOTO the reference's person?", commands.verify)
    verify.add_argument("photo", metavar="PHOTO")
    reference = verify.add_mutually_exclusive_group(required=True)
    reference.add_argument("--reference", metavar="PHOTO", help="compare with the largest face of this photo")
    reference.add_argument("--person", metavar="PERSON_ID", help="compare with this enrolled person")
    verify.add_argument("--threshold", type=float, metavar="T", help="override the default threshold")
    _collection_flag(verify)

    detect = _command(subparsers, "detect", "find faces (boxes, landmarks, quality)", commands.detect)
    detect.add_argument("photo", metavar="PHOTO")
    detect.add_argument("--embeddings", action="store_true", help="include each face's descriptor (JSON)")


def _add_people_commands(subparsers: Subparsers) -> None:
    people = _command(subparsers, "people", "list, show, update or delete enrolled people")
    actions = people.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _command(actions, "list", "every person of the collection", commands.people_list)
    listing.add_argument("--page-size", type=int, default=0, metavar="N", help="people fetched per call")
    show = _command(actions, "show", "one person", commands.people_show)
    update = _command(actions, "update", "set a person's name or metadata", commands.people_update)
    delete = _command(actions, "delete", "erase a person (every face)", commands.people_delete)
    for parser in (show, update, delete):
        parser.add_argument("person_id", metavar="PERSON_ID")
    update.add_argument("--name", metavar="DISPLAY_NAME")
    update.add_argument("--meta", metavar="KEY=VALUE", action="append", type=_metadata_pair, help="empty VALUE deletes")
    update.add_argument("--replace-metadata", action="store_true", help="replace the metadata instead of merging")
    for parser in (listing, show, update, delete):
        _collection_flag(parser)


def _add_faces_commands(subparsers: Subparsers) -> None:
    faces = _command(subparsers, "faces", "list a person's faces; delete or move one face (corrections)")
    actions = faces.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _command(
        actions, "list", "every face of a person: id, photo, time enrolled, quality, box", commands.faces_list
    )
    listing.add_argument("person_id", metavar="PERSON_ID")
    listing.add_argument("--page-size", type=int, default=0, metavar="N", help="faces fetched per call")
    delete = _command(actions, "delete", "delete one face (the person keeps the others)", commands.faces_delete)
    delete.add_argument("face_id", metavar="FACE_ID")
    move = _command(actions, "move", "move one face to another person (enrolled or new)", commands.faces_move)
    move.add_argument("face_id", metavar="FACE_ID")
    move.add_argument("--to", dest="to_person_id", required=True, metavar="PERSON_ID", help="the face's person")
    for parser in (listing, delete, move):
        _collection_flag(parser, "must exist")


def _since(text: str) -> datetime:
    """An argparse type: ``--since`` as a time (``facerec.cli.durations.parse_since``)."""
    try:
        return parse_since(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


AUDIT_EPILOG = """WHEN is an ISO 8601 time (2026-12-01, 2026-12-01T09:30, 2026-12-01T09:30:00+01:00; UTC without an
offset) or a duration ago: seconds or numbers with units s, m, h, d, w, y (7d, 12h, 30m, 1d12h).

Every enrollment, face deletion or move, person change or erasure, retention purge and collection change of
the tenant is listed, oldest first: time, action, collection, person, face, faces counted, the API key's
fingerprint (key: and the first 16 hex digits of the SHA-256 of the key) or registry:retention, the request id.
No descriptor or image is ever recorded."""


def _add_audit_command(subparsers: Subparsers) -> None:
    audit = _command(
        subparsers, "audit", "the tenant's audit record: who enrolled, changed or erased what, and when", commands.audit
    )
    audit.epilog = AUDIT_EPILOG
    audit.formatter_class = argparse.RawDescriptionHelpFormatter
    audit.add_argument("--since", type=_since, metavar="WHEN", help="only events at or after WHEN (default: all)")
    audit.add_argument(
        "--collection", default="", metavar="NAME", help="only this collection's events (default: every collection)"
    )
    audit.add_argument("--page-size", type=int, default=0, metavar="N", help="events fetched per call")


def _retention(text: str) -> int:
    """An argparse type: a retention period (``facerec.cli.durations``) within ``facerec.limits``."""
    try:
        return limits.check_retention_seconds(parse_duration(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _retention_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention",
        type=_retention,
        metavar="DURATION",
        help="purge a person's faces this long after their newest enrollment (30d, 12h, 3y, seconds; 0: never)",
    )


def _checked(check: Callable[[float], float]) -> Callable[[str], float]:
    """An argparse type: a float that ``check`` (from :mod:`facerec.limits`) accepts."""

    def parse(text: str) -> float:
        try:
            return check(float(text))
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return parse


def _decision_flags(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    default = " (default: the model's, 0.6)" if creating else ""
    parser.add_argument(
        "--threshold",
        type=_checked(limits.check_threshold),
        metavar="T",
        help=f"largest distance ever accepted: the fixed threshold, or the cap of a target FPIR{default}",
    )
    parser.add_argument(
        "--target-fpir",
        type=_checked(limits.check_target_fpir),
        metavar="F",
        help="share of strangers that may be matched, the threshold following the collection's size "
        "(0: fixed threshold" + ("; default: the service's, unless --threshold is given)" if creating else ")"),
    )
    parser.add_argument(
        "--min-margin",
        type=_checked(limits.check_min_margin),
        metavar="M",
        help="a face nearer than M to its second-nearest person is ambiguous (0: no rule"
        + ("; default: the service's)" if creating else ")"),
    )


def _add_collection_commands(subparsers: Subparsers) -> None:
    collections = _command(subparsers, "collections", "create, list, show, update, calibrate or delete collections")
    actions = collections.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _command(actions, "create", "create a collection", commands.collections_create)
    _decision_flags(create, creating=True)
    _retention_flag(create)
    _command(actions, "list", "the caller's collections", commands.collections_list)
    show = _command(actions, "show", "one collection", commands.collections_show)
    update = _command(
        actions, "update", "change a collection's decision settings or retention", commands.collections_update
    )
    _decision_flags(update, creating=False)
    _retention_flag(update)
    calibrate = _command(
        actions,
        "calibrate",
        "calibrate a threshold on the collection's own faces (people with 2+ faces)",
        commands.collections_calibrate,
    )
    _target_fmr_flag(calibrate)
    calibrate.add_argument("--apply", action="store_true", help="set the threshold as the collection's fixed one")
    delete = _command(actions, "delete", "delete a collection and every face in it", commands.collections_delete)
    for parser in (create, show, update, calibrate, delete):
        parser.add_argument("name", metavar="NAME")


def _target_fmr_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-fmr",
        type=_checked(limits.target_fmr_or_default),
        default=limits.DEFAULT_TARGET_FMR,
        metavar="F",
        help="false match rate the threshold is chosen for (default %(default)g)",
    )


def _add_calibrate_command(subparsers: Subparsers) -> None:
    calibrate = _command(
        subparsers,
        "calibrate",
        "calibrate a threshold on labelled photos DIR/<person>/<photos> (every genuine and impostor pair)",
        commands.calibrate,
    )
    calibrate.add_argument("dir", metavar="DIR")
    _target_fmr_flag(calibrate)
    calibrate.add_argument(
        "--collection", metavar="NAME", help="the collection --apply sets the threshold on (as its fixed threshold)"
    )
    calibrate.add_argument("--apply", action="store_true", help="set the threshold on --collection")


IMPORT_EPILOG = f"""Photos are recognised by their content, not their names (files without an extension are fine):
{ACCEPTED_NAMES}.
Every other file is skipped and named on stderr (and in --json's skipped_files); hidden files and folders
are ignored.

The collection must exist (exit 3 before anything is sent) unless --create is given; the default collection
is created on first use.

Running the same import again finishes an interrupted one: a person is skipped when the collection already
holds at least as many faces of theirs as their folder has distinct photos (copies of a photo count once):
an earlier run enrolled every one. Anyone else is sent again in full, which stores nothing twice (a face's
id is derived from the collection, the person, the photo's content and the face). People with a rejected
photo are therefore sent again each time; --resend sends everyone.

People are sent in BulkEnroll streams of about 32 photos, two at a time; progress, rate and ETA count the
photos the gateway has answered for. Streams have no deadline (--timeout bounds each of the other calls;
the gateway bounds each person's enrollment). The summary is printed even when a stream breaks: then no
new stream is started, the summary says which of that stream's people the collection holds, and the exit
code is the error's."""


def _add_import_command(subparsers: Subparsers) -> None:
    importer = _command(
        subparsers, "import", "enroll every DIR/<person>/ folder (person id = folder name)", commands.import_folder
    )
    importer.epilog = IMPORT_EPILOG
    importer.formatter_class = argparse.RawDescriptionHelpFormatter
    importer.add_argument("dir", metavar="DIR")
    importer.add_argument("--largest", action="store_true", help="take each photo's largest face")
    importer.add_argument(
        "--strict", action="store_true", help="exit 4 when any photo was rejected or any file skipped"
    )
    importer.add_argument("--create", action="store_true", help="create the collection when it does not exist")
    importer.add_argument(
        "--resend", action="store_true", help="send every person, also those the collection already holds in full"
    )
    _collection_flag(importer, "must exist unless --create; default is created on first use")


CLUSTER_EPILOG = f"""Every photo under DIR (any depth; by content, as import finds them: {ACCEPTED_NAMES}) is
sent; each face is linked to its nearest faces within the threshold (the service's search, as identify does) and
the links are cut into groups by Chinese whispers (dlib's face clustering). Groups smaller than --min-faces
are listed as faces in no group. Files that are not photos, cannot be read, or show no face are listed as
skipped and do not stop the run. With --enroll, each group becomes a new person of --collection, named by
--prefix (default: cluster-<8 hex>-, fresh each run) and the group's number, 1 for the largest.

--json: {{"clusters": [{{"person_id", "faces": [{{"photo", "box": {{"x", "y", "width", "height"}},
"face_index"}}]}}], "noise": [faces], "skipped": [{{"photo", "reason"}}], ...}}; photo is the path as DIR was
typed. Progress (per stage) goes to stderr."""


def _min_faces(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 1 (0 means the service's 2), got {value}")
    return value


def _add_cluster_command(subparsers: Subparsers) -> None:
    cluster = _command(subparsers, "cluster", "group the faces of every photo under DIR into people", cluster_cli.run)
    cluster.epilog = CLUSTER_EPILOG
    cluster.formatter_class = argparse.RawDescriptionHelpFormatter
    cluster.add_argument("dir", metavar="DIR")
    cluster.add_argument(
        "--threshold",
        type=_checked(limits.check_threshold),
        metavar="T",
        help="faces at most T apart are linked (default: the service's 0.5)",
    )
    cluster.add_argument(
        "--min-faces", type=_min_faces, default=0, metavar="N", help="smallest group (default: the service's 2)"
    )
    cluster.add_argument("--enroll", action="store_true", help="enroll each group as a new person of --collection")
    cluster.add_argument("--prefix", metavar="P", help="with --enroll: person ids are P and the group's number")
    _collection_flag(cluster, "with --enroll; must exist, the default one is created on first use")


def _add_health_command(subparsers: Subparsers) -> None:
    health = _command(subparsers, "health", "grpc.health.v1 check of any facerec service (exit 0 when SERVING)")
    health.add_argument("--address", metavar="HOST:PORT", help="service to check (default: the gateway)")
    health.add_argument(
        "--service", default="", metavar="NAME", help="service name to check (default: the whole server)"
    )


if __name__ == "__main__":
    sys.exit(main())

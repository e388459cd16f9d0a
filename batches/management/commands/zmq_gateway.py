"""manage.py zmq_gateway: the queue over ZeroMQ (requests on REQ/ROUTER, progress on PUB).

The work is in batches/zmq_gateway/; this only reads flags, refuses an unguarded address
(exit 64, naming the flag), logs one line with the addresses, and serves until SIGTERM/SIGINT.
"""
from __future__ import annotations

from batches.cli import CliCommand, UsageError, resolve_user
from batches.zmq_gateway import handlers, security
from batches.zmq_gateway.server import Gateway


class Command(CliCommand):
    help = ("Serve the queue over ZeroMQ: JSON requests (submit, status, cancel, list, ping) on --rep "
            "for REQ clients, and every progress event on --pub as [topic, json] with topics "
            "'queue' and 'job.<id>'. Binds to this machine only unless a key guards it.")

    def add_arguments(self, parser):
        parser.add_argument("--rep", default="tcp://127.0.0.1:5555", metavar="ADDRESS",
                            help="where REQ clients connect (default tcp://127.0.0.1:5555)")
        parser.add_argument("--pub", default="tcp://127.0.0.1:5556", metavar="ADDRESS",
                            help="where SUB clients connect for progress events (default tcp://127.0.0.1:5556)")
        parser.add_argument("--user", metavar="NAME",
                            help="the user a request without a token acts as (default: as the CLI's)")
        parser.add_argument("--require-token", action="store_true",
                            help="refuse requests without a valid API token (needed for --rep off this machine "
                                 "unless --curve-secret-key is given)")
        parser.add_argument("--curve-secret-key", metavar="FILE",
                            help="CurveZMQ: the server's zmq.auth secret key file; encrypts both sockets and "
                                 "allows binding off this machine")
        parser.add_argument("--curve-clients", metavar="DIR",
                            help="CurveZMQ: accept only the client public keys in DIR (default: any client "
                                 "that knows the server's public key)")

    def handle(self, *args, **options):
        try:
            curve = security.load_curve(options["curve_secret_key"], options["curve_clients"])
            security.check_binding(rep=options["rep"], pub=options["pub"], curve=curve,
                                   require_token=options["require_token"])
        except security.SecurityError as exc:
            raise UsageError(str(exc)) from None
        if options["user"] and options["require_token"]:
            raise UsageError("--user: not with --require-token (every request then acts as its token's user)")
        default_user = None
        if not options["require_token"]:
            default_user = resolve_user(options["user"])  # an unknown --user is refused now, not per request
        config = handlers.Config(user_name=options["user"], require_token=options["require_token"])
        gateway = Gateway(rep=options["rep"], pub=options["pub"], config=config, curve=curve)
        try:
            rep, pub = gateway.bind()
        except security.SecurityError as exc:
            raise UsageError(str(exc)) from None
        who = "a valid API token" if options["require_token"] else f"a token, else as {default_user.get_username()}"
        self.stdout.write(f"zmq_gateway: requests on {rep}, events on {pub} (topics queue, job.<id>); "
                          f"requests act as {who}; CURVE {'on' if curve else 'off'}")
        self.stdout.flush()
        gateway.serve_forever()
        self.stdout.write("zmq_gateway: stopped")

#!/usr/bin/python3
"""A gRPC client that knows nothing of jobstream except what server reflection tells it.

It checks the server from outside the Node.js stack: every type comes from reflection,
and `describe` and `call` load the service's file and all of its imports, by their file
names, into a fresh descriptor pool, which fails unless every dependency resolves.

Needs Debian's python3-grpcio, python3-grpc-tools and grpc-proto (run it with
/usr/bin/python3, not another Python on PATH).

Usage:
  grpc_reflect_client.py TARGET list
  grpc_reflect_client.py TARGET describe SERVICE
  grpc_reflect_client.py TARGET call SERVICE/METHOD JSON [-H 'key: value']...
Options for every command: --reflection v1|v1alpha (default v1), --timeout SECONDS,
-H 'key: value' (metadata sent with every request, reflection included).

`call` prints each response as one line of JSON (proto3 JSON mapping). On a gRPC error
it prints `CODE_NAME: details` on stderr and exits 1; on a usage or reflection problem
it exits 2.
"""

import argparse
import os
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_tools import protoc

GRPC_PROTO_DIR = "/usr/share/grpc-proto"
REFLECTION_PROTO = "grpc/reflection/v1/reflection.proto"


class ReflectionFailure(Exception):
    """The server's reflection answers do not describe what was asked."""


def message_class(descriptor):
    # GetMessageClass appeared in protobuf 4.22; Debian 12 ships 4.21.
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


def reflection_messages():
    """Compiles reflection.proto to a descriptor set, not to Python modules: the
    generated code of Debian's old grpc_tools would sit under the `grpc` package name
    that grpcio owns, while a descriptor set loads the same on any protobuf version."""
    with tempfile.TemporaryDirectory(prefix="grpc-reflect-") as tmp:
        out = os.path.join(tmp, "reflection.binpb")
        status = protoc.main(
            ["protoc", "-I" + GRPC_PROTO_DIR, "--include_imports", "--descriptor_set_out=" + out, REFLECTION_PROTO]
        )
        if status != 0:
            raise ReflectionFailure("protoc failed on %s/%s" % (GRPC_PROTO_DIR, REFLECTION_PROTO))
        with open(out, "rb") as handle:
            files = descriptor_pb2.FileDescriptorSet.FromString(handle.read())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    request = message_class(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest"))
    response = message_class(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse"))
    return request, response


class Reflection:
    def __init__(self, channel, version, metadata, timeout):
        self.channel = channel
        self.request_class, response_class = reflection_messages()
        # v1alpha's messages are wire-identical to v1's; only the path differs.
        self.stub = channel.stream_stream(
            "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        self.metadata = metadata
        self.timeout = timeout

    def ask(self, **fields):
        request = self.request_class(**fields)
        responses = self.stub(iter([request]), metadata=self.metadata, timeout=self.timeout)
        response = next(iter(responses))
        if response.WhichOneof("message_response") == "error_response":
            error = response.error_response
            raise ReflectionFailure(
                "reflection error for %s: %s (code %d)" % (fields, error.error_message, error.error_code)
            )
        return response

    def list_services(self):
        return [service.name for service in self.ask(list_services="*").list_services_response.service]

    def files_for(self, response):
        return [
            descriptor_pb2.FileDescriptorProto.FromString(data)
            for data in response.file_descriptor_response.file_descriptor_proto
        ]

    def pool_for_symbol(self, symbol):
        """Loads the file defining `symbol` and, transitively, every file it imports."""
        files = {}
        pending = self.files_for(self.ask(file_containing_symbol=symbol))
        while pending:
            file_proto = pending.pop()
            if file_proto.name in files:
                continue
            files[file_proto.name] = file_proto
            for dependency in file_proto.dependency:
                if dependency not in files:
                    found = self.files_for(self.ask(file_by_filename=dependency))
                    if not any(f.name == dependency for f in found):
                        raise ReflectionFailure("file_by_filename(%s) did not return that file" % dependency)
                    pending.extend(found)
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            for dependency in files[name].dependency:
                add(dependency)
            pool.Add(files[name])
            added.add(name)

        for name in sorted(files):
            add(name)
        return pool, sorted(files)


def method_line(method):
    client = "stream " if method.client_streaming else ""
    server = "stream " if method.server_streaming else ""
    return "  rpc %s(%s%s) returns (%s%s)" % (
        method.name,
        client,
        method.input_type.full_name,
        server,
        method.output_type.full_name,
    )


def find_service(reflection, service_name):
    pool, file_names = reflection.pool_for_symbol(service_name)
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        raise ReflectionFailure("service %s is not in the files reflection returned" % service_name)
    # Resolving every message a method touches proves the imports were complete.
    for method in service.methods:
        for message in (method.input_type, method.output_type):
            check_message(message, set())
    return service, file_names


def check_message(descriptor, seen):
    if descriptor.full_name in seen:
        return
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        if field.message_type is not None:
            check_message(field.message_type, seen)


def command_list(reflection, _args):
    for name in reflection.list_services():
        print(name)


def command_describe(reflection, args):
    service, file_names = find_service(reflection, args.service)
    print("%s (%s)" % (service.full_name, service.file.name))
    for method in service.methods:
        print(method_line(method))
    print("files: %s" % " ".join(file_names))


def command_call(reflection, args):
    service_name, _, method_name = args.method.rpartition("/")
    if not service_name or not method_name:
        raise ReflectionFailure("expected SERVICE/METHOD, got %r" % args.method)
    service, _ = find_service(reflection, service_name)
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise ReflectionFailure("%s has no method %s" % (service_name, method_name))
    if method.client_streaming:
        raise ReflectionFailure("client-streaming methods are not supported")
    request = json_format.Parse(args.json, message_class(method.input_type)())
    response_class = message_class(method.output_type)
    channel = reflection.channel
    factory = channel.unary_stream if method.server_streaming else channel.unary_unary
    call = factory(
        "/%s/%s" % (service.full_name, method.name),
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    result = call(request, metadata=reflection.metadata, timeout=reflection.timeout)
    responses = result if method.server_streaming else [result]
    for response in responses:
        print(json_format.MessageToJson(response, indent=None), flush=True)


def parse_header(value):
    key, separator, content = value.partition(":")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError("expected 'key: value', got %r" % value)
    # gRPC metadata keys are lowercase; grpcio rejects others.
    return key.strip().lower(), content.strip()


def main(argv):
    # Accepted before and after the command. SUPPRESS keeps a subcommand's parser from
    # overwriting with its default what the main parser read before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-H", dest="headers", action="append", type=parse_header, default=argparse.SUPPRESS)
    common.add_argument("--reflection", choices=["v1", "v1alpha"], default=argparse.SUPPRESS)
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[common])
    parser.add_argument("target", help="host:port")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common]).set_defaults(run=command_list)
    describe = commands.add_parser("describe", parents=[common])
    describe.add_argument("service")
    describe.set_defaults(run=command_describe)
    call = commands.add_parser("call", parents=[common])
    call.add_argument("method", help="SERVICE/METHOD, e.g. grpc.health.v1.Health/Check")
    call.add_argument("json", help="the request as JSON (proto3 JSON mapping)")
    call.set_defaults(run=command_call)
    args = parser.parse_args(argv)
    headers = getattr(args, "headers", [])
    version = getattr(args, "reflection", "v1")
    timeout = getattr(args, "timeout", 10.0)

    with grpc.insecure_channel(args.target) as channel:
        try:
            reflection = Reflection(channel, version, headers, timeout)
            args.run(reflection, args)
        except grpc.RpcError as error:
            print("%s: %s" % (error.code().name, error.details()), file=sys.stderr)
            return 1
        except (ReflectionFailure, json_format.ParseError, TypeError, KeyError) as error:
            print("reflection client: %s" % error, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

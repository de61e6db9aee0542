import { randomUUID } from 'node:crypto';
import {
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescMethod,
  type DescService,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import {
  Code,
  ConnectError,
  createContextKey,
  type ConnectRouter,
  type HandlerContext,
} from '@connectrpc/connect';
import { isAbortError } from 'abort-controller-x';
import {
  Metadata,
  ServerError,
  Status,
  type CallContext,
  type MethodDescriptor,
  type ServerMiddleware,
} from 'nice-grpc';
import { AdminServiceDefinition, type AdminServiceImplementation } from '@jobstream/proto/admin';
import { readDescriptorSet } from '@jobstream/proto/descriptor-set';
import type { Logger } from '../logger.js';

/** The HTTP client's address, in grpc-js's `peer` format ("ipv4:127.0.0.1:5555"). */
export const PEER_ADDRESS = createContextKey<string>('unknown', { description: 'client address' });

/** What the browser protocol needs to know about a call beyond its message. */
export interface BrowserCall {
  /** The call's metadata as the gRPC handlers read it (authorization above all). */
  readonly metadata: Metadata;
  /** The client's address, as grpc-js reports `peer` ("ipv4:127.0.0.1:5555"). */
  readonly peer: string;
}

export interface OperatorApiBridgeOptions {
  /** The very object the gRPC server serves AdminService with. */
  implementation: AdminServiceImplementation;
  /** The gRPC server's middleware, outermost first (the error boundary, request sanity). */
  middleware: ServerMiddleware;
  /**
   * Turns an HTTP request into the call's metadata, or refuses it (by throwing a
   * ServerError): cookies, CSRF checks. Runs before the middleware, so a refusal is final.
   */
  admit: (method: string, context: HandlerContext) => BrowserCall;
  /** Sees every answer before it is encoded, e.g. to move a session token into a cookie. */
  onResponse?: (method: string, response: unknown, context: HandlerContext) => unknown;
  logger: Logger;
}

type UnaryImplementation = (request: unknown, context: CallContext) => Promise<unknown>;

interface TsProtoMethod {
  readonly name: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly options: object;
  readonly requestType: { decode(input: Uint8Array): unknown };
  readonly responseType: { encode(message: never): { finish(): Uint8Array } };
}

/**
 * AdminService for browsers (gRPC-Web, and the Connect protocol for curl), served by
 * `@connectrpc/connect-node` over the admin's own handlers: every call runs the same
 * implementation object behind the same middleware as on the gRPC port, so
 * authentication, authorization, validation, the login throttle and the error mapping
 * are the gRPC server's, not a copy.
 *
 * Connect needs the service's descriptors, which it reads from the descriptor set buf
 * compiled (the one reflection serves) instead of a second generated runtime; a request
 * reaches the ts-proto types the handlers speak as its protobuf bytes, decoded once more.
 */
export function operatorApiRoutes(options: OperatorApiBridgeOptions): (router: ConnectRouter) => void {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readDescriptorSet()));
  const service = registry.getService(AdminServiceDefinition.fullName);
  if (service === undefined)
    throw new Error(`${AdminServiceDefinition.fullName} is not in the descriptor set`);
  const definitions = new Map<string, [string, TsProtoMethod]>(
    Object.entries(AdminServiceDefinition.methods as Record<string, TsProtoMethod>).map(([key, method]) => [
      method.name,
      [key, method],
    ]),
  );
  const implementations = options.implementation as unknown as Record<string, UnaryImplementation>;

  return router => {
    for (const method of service.methods) {
      const found = definitions.get(method.name);
      if (found === undefined) throw new Error(`AdminService.${method.name} has no ts-proto definition`);
      const [key, definition] = found;
      const implementation = implementations[key];
      if (implementation === undefined || definition.requestStream || definition.responseStream) {
        throw new Error(`AdminService.${method.name} is not a unary method with an implementation`);
      }
      router.rpc(method as DescMethod & { methodKind: 'unary' }, (request, context) =>
        invoke({ options, service, method, key, definition, implementation, request, context }),
      );
    }
  };
}

async function invoke(call: {
  options: OperatorApiBridgeOptions;
  service: DescService;
  method: DescMethod;
  key: string;
  definition: TsProtoMethod;
  implementation: UnaryImplementation;
  request: Parameters<typeof toBinary>[1];
  context: HandlerContext;
}): Promise<never> {
  const { options, method, key, definition, implementation, context } = call;
  try {
    const admitted = options.admit(key, context);
    const callContext: CallContext = {
      metadata: admitted.metadata,
      peer: admitted.peer,
      header: Metadata(),
      sendHeader: () => undefined,
      trailer: Metadata(),
      signal: context.signal,
    };
    const bytes = toBinary(method.input, call.request);
    const descriptor: MethodDescriptor = {
      path: `/${call.service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      options: definition.options,
    };
    const response = await unary(
      options.middleware,
      descriptor,
      implementation,
      bytes,
      definition,
      callContext,
    );
    const answer = options.onResponse ? options.onResponse(key, response, context) : response;
    const encoded = definition.responseType.encode(answer as never).finish();
    return fromBinary(method.output, encoded) as never;
  } catch (error) {
    throw connectErrorOf(error, options.logger, key);
  }
}

/** Runs one unary call through the middleware as nice-grpc's server does (handleUnaryCall). */
async function unary(
  middleware: ServerMiddleware,
  method: MethodDescriptor,
  implementation: UnaryImplementation,
  bytes: Uint8Array,
  definition: TsProtoMethod,
  context: CallContext,
): Promise<unknown> {
  let request: unknown;
  try {
    request = definition.requestType.decode(bytes);
  } catch (error) {
    throw new ServerError(
      Status.INVALID_ARGUMENT,
      `malformed message: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const iterator = middleware(
    {
      method,
      requestStream: false,
      request,
      responseStream: false,
      // eslint-disable-next-line require-yield -- a unary method returns its message
      next: async function* (nextRequest: unknown, nextContext: CallContext) {
        return await implementation(nextRequest, nextContext);
      },
    } as never,
    context,
  )[Symbol.asyncIterator]();
  const result = await iterator.next();
  if (!result.done || result.value == null) {
    throw new ServerError(Status.INTERNAL, 'a middleware did not return one message for a unary method');
  }
  return result.value;
}

/** gRPC and Connect share their status codes, numbers included. */
function connectErrorOf(error: unknown, logger: Logger, method: string): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof ServerError) return new ConnectError(error.details, error.code as number);
  if (isAbortError(error)) return new ConnectError('the call was cancelled', Code.Canceled);
  // The middleware's error boundary maps everything the handlers throw: this is the bridge's own.
  const errorId = randomUUID();
  logger.error({ err: error, method, errorId }, 'unexpected error in the browser protocol bridge');
  return new ConnectError(`internal error ${errorId} (details in the admin log)`, Code.Internal);
}

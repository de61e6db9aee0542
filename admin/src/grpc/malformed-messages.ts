import type { BinaryReader } from '@bufbuild/protobuf/wire';
import { ServerError, Status } from 'nice-grpc';

const MALFORMED = Symbol('malformed message');

/** Stands in for a request message that could not be decoded. */
interface MalformedMessage {
  readonly [MALFORMED]: string;
}

function isMalformed(value: unknown): value is MalformedMessage {
  return typeof value === 'object' && value !== null && MALFORMED in value;
}

interface TsProtoDefinition {
  readonly methods: Readonly<
    Record<
      string,
      { readonly requestType: { decode(input: BinaryReader | Uint8Array, length?: number): unknown } }
    >
  >;
}

/**
 * The definition with request decoding that never throws: a message that does not
 * decode is handed on as a marker, which `refuseMalformed` turns into INVALID_ARGUMENT.
 *
 * Left to grpc-js, a decoding error ends the call with INTERNAL "Error deserializing
 * request", and on a stream it does so behind the handler's back: a message the handler
 * writes after that is written to an ended HTTP/2 stream, the trailers are never sent
 * and the client waits forever (grpc-js 1.14). Refusing in the handler's own flow keeps
 * the order of events and gives the right status.
 */
export function tolerantDecoding<D extends TsProtoDefinition>(definition: D): D {
  const methods = Object.fromEntries(
    Object.entries(definition.methods).map(([key, method]) => {
      const decode = method.requestType.decode.bind(method.requestType);
      const tolerant = (input: BinaryReader | Uint8Array, length?: number): unknown => {
        try {
          return decode(input, length);
        } catch (error) {
          const marker: MalformedMessage = {
            [MALFORMED]: error instanceof Error ? error.message : String(error),
          };
          return marker;
        }
      };
      return [key, { ...method, requestType: { ...method.requestType, decode: tolerant } }];
    }),
  );
  return { ...definition, methods };
}

/** A unary request, unless it is a marker left by `tolerantDecoding`. */
export function refuseMalformedRequest<T>(request: T): T {
  if (isMalformed(request)) throw malformed(request);
  return request;
}

/** A request stream that ends with INVALID_ARGUMENT at the first marker left by `tolerantDecoding`. */
export async function* refuseMalformedMessages<T>(
  messages: AsyncIterable<T>,
): AsyncGenerator<T, void, undefined> {
  for await (const message of messages) {
    if (isMalformed(message)) throw malformed(message);
    yield message;
  }
}

function malformed(marker: MalformedMessage): ServerError {
  return new ServerError(Status.INVALID_ARGUMENT, `malformed message: ${marker[MALFORMED]}`);
}

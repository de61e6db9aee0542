interface MessageFns {
  fromPartial?: unknown;
}

interface TsProtoServiceDefinition {
  readonly methods: Readonly<
    Record<string, { readonly requestType: MessageFns; readonly responseType: MessageFns }>
  >;
}

/**
 * The service definition with the messages of one direction encoded as they are given.
 * nice-grpc otherwise passes every message through ts-proto's `fromPartial` before
 * encoding it: a deep copy that fills in defaults, one per run request and result on the
 * executor stream. The messages this code sends are built complete (typed as the full
 * message, not a partial one), so the copy only costs time and garbage.
 */
export function encodeAsGiven<D extends TsProtoServiceDefinition>(
  definition: D,
  direction: 'requests' | 'responses',
): D {
  const key = direction === 'requests' ? 'requestType' : 'responseType';
  const methods = Object.fromEntries(
    Object.entries(definition.methods).map(([name, method]) => [
      name,
      { ...method, [key]: { ...method[key], fromPartial: undefined } },
    ]),
  );
  return { ...definition, methods };
}

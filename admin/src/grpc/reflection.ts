import { readDescriptorSet } from '@jobstream/proto/descriptor-set';
import type { ServiceDefinition as GrpcJsServiceDefinition } from '@grpc/grpc-js';
import type { Server } from 'nice-grpc';
import { HealthDefinition, HealthServiceImpl, HealthState } from 'nice-grpc-server-health';
import { ServerReflection, ServerReflectionService } from 'nice-grpc-server-reflection';

export interface ReflectionAndHealthOptions {
  /** Full names of the application's services (e.g. `jobstream.v1.AdminService`). */
  readonly serviceNames: readonly string[];
}

export interface ReflectionAndHealth {
  /**
   * `grpc.health.v1.Health` answers from this. The overall status ('') and each of
   * `serviceNames` start 'healthy'; set 'unhealthy' to report NOT_SERVING (draining,
   * database lost) and back.
   */
  readonly health: HealthState;
}

const HEALTH_SERVICE = 'grpc.health.v1.Health';
const REFLECTION_PACKAGES = ['grpc.reflection.v1', 'grpc.reflection.v1alpha'] as const;

/**
 * Adds gRPC server reflection (v1 and v1alpha) and the standard health service.
 *
 * Reflection serves the descriptor set buf compiled (`npm run generate`), not descriptors
 * rebuilt from ts-proto or proto-loader: only buf's keep the real file names and import
 * lists, and strict clients (grpcurl, Python's descriptor pool) resolve a service by
 * fetching each file's dependencies by those names.
 */
export function addReflectionAndHealth(
  server: Server,
  options: ReflectionAndHealthOptions,
): ReflectionAndHealth {
  const health = HealthState();
  for (const name of options.serviceNames) health.setStatus('healthy', name);
  server.add(HealthDefinition, HealthServiceImpl(health));

  // A FileDescriptorSet is only repeated field 1, so appending encoded entries extends it.
  // Should buf's set ever hold these files too, its copies come first and win.
  const protoset = Buffer.concat([readDescriptorSet(), ...STANDARD_FILES.map(file => tagged(1, file))]);
  const serviceNames = [
    ...new Set([
      ...options.serviceNames,
      HEALTH_SERVICE,
      ...REFLECTION_PACKAGES.map(p => `${p}.ServerReflection`),
    ]),
  ];
  const reflection = ServerReflection(protoset, serviceNames);
  server.add(ServerReflectionService, reflection);
  // nice-grpc-server-reflection serves only v1, but many clients (grpcurl before 1.9,
  // grpc-java's and Postman's older versions) ask v1alpha only. Its messages are
  // wire-identical to v1's, so the same serializers and implementation serve it.
  const v1alpha: GrpcJsServiceDefinition = {
    serverReflectionInfo: {
      ...ServerReflectionService.serverReflectionInfo,
      path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
    },
  };
  server.add(v1alpha, reflection);
  return { health };
}

// --- Descriptors of the health and reflection services ---------------------------------
// The descriptor set holds only jobstream's protos, yet clients describe every service
// that reflection lists (grpcurl `describe`, GUIs on connect) and fail outright on one
// they cannot resolve. These protos are small and frozen, so their FileDescriptorProtos
// are encoded here rather than adding a proto dependency to the build.

type FieldValue = string | number | boolean | Uint8Array | undefined;

/** Encodes a message whose fields are strings, nested messages, varints or bools. */
function encode(fields: ReadonlyArray<readonly [number, FieldValue]>): Uint8Array {
  return Buffer.concat(
    fields.map(([number, value]) => {
      if (value === undefined || value === false) return Buffer.alloc(0);
      if (typeof value === 'number' || typeof value === 'boolean') {
        return Buffer.concat([varint(number << 3), varint(Number(value))]);
      }
      return tagged(number, typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
    }),
  );
}

function tagged(number: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

// google/protobuf/descriptor.proto field numbers and enum values.
const LABEL_OPTIONAL = 1;
const LABEL_REPEATED = 3;
const TYPE_INT32 = 5;
const TYPE_STRING = 9;
const TYPE_MESSAGE = 11;
const TYPE_BYTES = 12;
const TYPE_ENUM = 14;

function field(
  name: string,
  number: number,
  type: number,
  extra: { typeName?: string; repeated?: boolean; oneofIndex?: number } = {},
): Uint8Array {
  const jsonName = name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
  return encode([
    [1, name],
    [3, number],
    [4, extra.repeated === true ? LABEL_REPEATED : LABEL_OPTIONAL],
    [5, type],
    [6, extra.typeName],
    [9, extra.oneofIndex],
    [10, jsonName],
  ]);
}

function message(
  name: string,
  fields: Uint8Array[],
  extra: { oneofs?: string[]; enums?: Uint8Array[] } = {},
) {
  return encode([
    [1, name],
    ...fields.map(f => [2, f] as const),
    ...(extra.enums ?? []).map(e => [4, e] as const),
    ...(extra.oneofs ?? []).map(o => [8, encode([[1, o]])] as const),
  ]);
}

function enumType(name: string, values: readonly string[]): Uint8Array {
  return encode([
    [1, name],
    ...values.map(
      (value, index) =>
        [
          2,
          encode([
            [1, value],
            [2, index],
          ]),
        ] as const,
    ),
  ]);
}

function method(
  name: string,
  input: string,
  output: string,
  streaming: { client?: boolean; server?: boolean } = {},
) {
  return encode([
    [1, name],
    [2, input],
    [3, output],
    [5, streaming.client],
    [6, streaming.server],
  ]);
}

function file(name: string, pkg: string, messages: Uint8Array[], service: Uint8Array): Uint8Array {
  return encode([[1, name], [2, pkg], ...messages.map(m => [4, m] as const), [6, service], [12, 'proto3']]);
}

function healthFile(): Uint8Array {
  const t = (name: string) => `.grpc.health.v1.${name}`;
  return file(
    'grpc/health/v1/health.proto',
    'grpc.health.v1',
    [
      message('HealthCheckRequest', [field('service', 1, TYPE_STRING)]),
      message(
        'HealthCheckResponse',
        [field('status', 1, TYPE_ENUM, { typeName: t('HealthCheckResponse.ServingStatus') })],
        { enums: [enumType('ServingStatus', ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'])] },
      ),
    ],
    // Only the methods nice-grpc-server-health implements (newer health.proto adds List).
    encode([
      [1, 'Health'],
      [2, method('Check', t('HealthCheckRequest'), t('HealthCheckResponse'))],
      [2, method('Watch', t('HealthCheckRequest'), t('HealthCheckResponse'), { server: true })],
    ]),
  );
}

function reflectionFile(pkg: (typeof REFLECTION_PACKAGES)[number]): Uint8Array {
  const t = (name: string) => `.${pkg}.${name}`;
  const request = { oneofIndex: 0 };
  const response = (typeName: string) => ({ typeName: t(typeName), oneofIndex: 0 });
  return file(
    `grpc/reflection/${pkg.split('.').at(-1)}/reflection.proto`,
    pkg,
    [
      message(
        'ServerReflectionRequest',
        [
          field('host', 1, TYPE_STRING),
          field('file_by_filename', 3, TYPE_STRING, request),
          field('file_containing_symbol', 4, TYPE_STRING, request),
          field('file_containing_extension', 5, TYPE_MESSAGE, {
            ...request,
            typeName: t('ExtensionRequest'),
          }),
          field('all_extension_numbers_of_type', 6, TYPE_STRING, request),
          field('list_services', 7, TYPE_STRING, request),
        ],
        { oneofs: ['message_request'] },
      ),
      message('ExtensionRequest', [
        field('containing_type', 1, TYPE_STRING),
        field('extension_number', 2, TYPE_INT32),
      ]),
      message(
        'ServerReflectionResponse',
        [
          field('valid_host', 1, TYPE_STRING),
          field('original_request', 2, TYPE_MESSAGE, { typeName: t('ServerReflectionRequest') }),
          field('file_descriptor_response', 4, TYPE_MESSAGE, response('FileDescriptorResponse')),
          field('all_extension_numbers_response', 5, TYPE_MESSAGE, response('ExtensionNumberResponse')),
          field('list_services_response', 6, TYPE_MESSAGE, response('ListServiceResponse')),
          field('error_response', 7, TYPE_MESSAGE, response('ErrorResponse')),
        ],
        { oneofs: ['message_response'] },
      ),
      message('FileDescriptorResponse', [field('file_descriptor_proto', 1, TYPE_BYTES, { repeated: true })]),
      message('ExtensionNumberResponse', [
        field('base_type_name', 1, TYPE_STRING),
        field('extension_number', 2, TYPE_INT32, { repeated: true }),
      ]),
      message('ListServiceResponse', [
        field('service', 1, TYPE_MESSAGE, { typeName: t('ServiceResponse'), repeated: true }),
      ]),
      message('ServiceResponse', [field('name', 1, TYPE_STRING)]),
      message('ErrorResponse', [field('error_code', 1, TYPE_INT32), field('error_message', 2, TYPE_STRING)]),
    ],
    encode([
      [1, 'ServerReflection'],
      [
        2,
        method('ServerReflectionInfo', t('ServerReflectionRequest'), t('ServerReflectionResponse'), {
          client: true,
          server: true,
        }),
      ],
    ]),
  );
}

const STANDARD_FILES: readonly Uint8Array[] = [healthFile(), ...REFLECTION_PACKAGES.map(reflectionFile)];

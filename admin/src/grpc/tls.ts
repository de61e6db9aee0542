import { ServerCredentials, ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';
import { ChannelCredentials, type CallContext } from 'nice-grpc';
import type { TlsConfig } from '../config.js';

/**
 * Carries the subject CN of a verified client certificate from the transport to the
 * handlers. nice-grpc's CallContext does not expose the connection's TLS state, but a
 * grpc-js server interceptor sees it; the interceptor always drops whatever a client sent
 * under this key first, so a value here can only come from a certificate the TLS
 * handshake verified.
 */
export const CLIENT_CERT_CN_KEY = 'jobstream-verified-client-cn-bin';

/** The credentials the gRPC port is served with: plaintext, TLS, or TLS requiring client certificates. */
export function serverCredentials(tls: TlsConfig | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ private_key: tls.key, cert_chain: tls.cert }],
    tls.clientCa !== undefined,
  );
}

/** The credentials this admin calls peer admins (AdminPeerService) with. */
export function peerChannelCredentials(tls: TlsConfig | undefined): ChannelCredentials {
  if (tls === undefined) return ChannelCredentials.createInsecure();
  // Under mutual TLS a peer's port demands a client certificate like any other client's;
  // the admin's own certificate is one the cluster's client CA already knows.
  return tls.clientCa === undefined
    ? ChannelCredentials.createSsl(tls.ca ?? null)
    : ChannelCredentials.createSsl(tls.ca ?? null, tls.key, tls.cert);
}

/** Hands the verified client certificate's subject CN to handlers; see {@link clientCertificateName}. */
export function clientCertificateInterceptor(): ServerInterceptor {
  return (_method, call) =>
    new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            metadata.remove(CLIENT_CERT_CN_KEY);
            // grpc-js reports a certificate only when the handshake verified it against the client CA.
            const certificate = call.getAuthContext().sslPeerCertificate;
            if (certificate !== undefined) {
              metadata.set(
                CLIENT_CERT_CN_KEY,
                Buffer.from(singleCommonName(certificate.subject) ?? '', 'utf8'),
              );
            }
            nextMetadata(metadata);
          },
        });
      },
    });
}

/**
 * The subject CN of the client certificate the call's connection was verified with:
 * undefined when the client presented none (or the port does not ask for one), '' when
 * the certificate has no CN or several.
 */
export function clientCertificateName(context: CallContext): string | undefined {
  const value = context.metadata.get(CLIENT_CERT_CN_KEY);
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
}

function singleCommonName(subject: unknown): string | undefined {
  if (typeof subject !== 'object' || subject === null) return undefined;
  // Node gives an array when the subject repeats CN; which one names the app would be a guess.
  const cn = (subject as { CN?: unknown }).CN;
  return typeof cn === 'string' ? cn : undefined;
}

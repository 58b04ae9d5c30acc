// A real OpenID Provider (panva's oidc-provider) on loopback, for the
// integration tests. Offline: every key is generated at start, nothing is
// fetched.
//
//   node tests/oidc-provider/server.mjs
//
// Listens on 127.0.0.1:$PORT (0, an ephemeral port, when unset), prints one
// JSON line on stdout once it serves:
//
//   {"issuer":"http://127.0.0.1:PORT","advertised_issuer":"…","port":PORT}
//
// and exits when its stdin closes, so that a test that dies never leaves it
// behind. With ISSUER_OVERRIDE set, the provider calls itself by that issuer
// (in discovery and in the tokens' `iss`) while serving on the loopback URL.
//
// The provider's own routes (discovery, JWKS, token endpoint, …) and test
// routes next to them:
//
//   GET  /test/health  → 200
//   POST /test/mint    {sub, aud, alg?, scope?, claims?, ttl?, client_id?}
//                      → {"access_token": "<RFC 9068 JWT>"}, minted by the
//                        provider's AccessToken model for a Grant it saved
//   POST /test/id_token {sub, aud, alg?, claims?, ttl?}
//                      → {"id_token": "<JWT>"}, by the provider's IdToken
//                        model, for a client whose id is `aud`
//   POST /test/rotate  {keep_old?: bool}
//                      → {"kids": [...]}: new signing keys (new kids); the
//                        JWKS serves only them, or them and the old ones
//
// Machine tokens come from the real token endpoint: the client_credentials
// grant of client MACHINE_CLIENT_ID / MACHINE_CLIENT_SECRET, with
// `resource` (the audience) and `alg` (the signing algorithm) in the body.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { promisify } from 'node:util';

import Provider from 'oidc-provider';

const ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA',
];
const MACHINE_CLIENT_ID = 'ensure-user-machine';
const MACHINE_CLIENT_SECRET = 'ensure-user-machine-secret';
// The client user tokens minted by /test/mint are issued to, unless the
// request names another.
const USER_CLIENT_ID = 'ensure-user-app';
const MACHINE_SCOPES = 'openid read write admin';

const generateKeyPair = promisify(crypto.generateKeyPair);

// One signing key per algorithm (each RSA algorithm a key of its own), as
// private JWKs with `kid`, `alg` and `use: sig`. `generation` goes into the
// kids, so rotated keys never reuse one. Generated in parallel: six RSA keys
// are most of the start time.
async function generateKeys(generation) {
  return Promise.all(ALGORITHMS.map(async (alg) => {
    let keyPair;
    if (alg.startsWith('RS') || alg.startsWith('PS')) {
      keyPair = await generateKeyPair('rsa', { modulusLength: 2048 });
    } else if (alg === 'ES256') {
      keyPair = await generateKeyPair('ec', { namedCurve: 'P-256' });
    } else if (alg === 'ES384') {
      keyPair = await generateKeyPair('ec', { namedCurve: 'P-384' });
    } else {
      keyPair = await generateKeyPair('ed25519');
    }
    const jwk = keyPair.privateKey.export({ format: 'jwk' });
    const kid = `${alg.toLowerCase()}-${generation}-${crypto.randomBytes(6).toString('hex')}`;
    return {
      ...jwk, kid, alg, use: 'sig',
    };
  }));
}

// Extra claims for the access tokens /test/mint is saving, read by the
// provider's extraTokenClaims hook.
const extraClaims = new WeakMap();

// The resource server an audience names, its tokens JWTs signed with `alg`.
function resourceServer(audience, { scope, alg, ttl }) {
  return {
    scope,
    audience,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg } },
  };
}

function createProvider(issuer, jwks) {
  const provider = new Provider(issuer, {
    jwks: { keys: jwks },
    clients: [
      {
        client_id: MACHINE_CLIENT_ID,
        client_secret: MACHINE_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: MACHINE_SCOPES,
      },
      {
        client_id: USER_CLIENT_ID,
        client_secret: 'ensure-user-app-secret',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
      },
    ],
    scopes: ['openid', 'offline_access', 'read', 'write', 'admin'],
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    enabledJWA: { idTokenSigningAlgValues: ALGORITHMS },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => true,
        // From the token endpoint: the client_credentials grant, whose
        // request names the algorithm (`alg`, RS256 when absent).
        getResourceServerInfo: (ctx, resourceIndicator) => {
          const body = ctx?.oidc?.body ?? {};
          return resourceServer(resourceIndicator, {
            scope: MACHINE_SCOPES,
            alg: body.alg || 'RS256',
            ttl: 300,
          });
        },
      },
    },
    extraTokenClaims: (ctx, token) => extraClaims.get(token),
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
      Grant: 3600,
      IdToken: 300,
      Interaction: 600,
      Session: 3600,
    },
  });
  return provider;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// A user's access token, minted the way the authorization code grant does:
// a Grant for the account and client, then an AccessToken bound to it and to
// the resource server, saved by the provider (which signs the JWT).
async function mintAccessToken(provider, request) {
  const {
    sub, aud, alg = 'RS256', scope = 'openid', claims = {}, ttl = 300,
    client_id: clientId = USER_CLIENT_ID,
  } = request;
  if (!sub || !aud) throw new Error('sub and aud are required');
  const client = await provider.Client.find(clientId);
  if (!client) throw new Error(`unknown client ${clientId}`);
  const grant = new provider.Grant({ accountId: sub, clientId });
  grant.addResourceScope(aud, scope);
  const grantId = await grant.save();
  const token = new provider.AccessToken({
    accountId: sub,
    client,
    grantId,
    gty: 'authorization_code',
    scope,
    expiresIn: ttl,
    resourceServer: new provider.ResourceServer(aud, resourceServer(aud, { scope, alg, ttl })),
  });
  extraClaims.set(token, claims);
  return token.save();
}

// An ID token for `sub`, issued to the client whose id is `aud` (a Client
// the provider validates from metadata, signing its ID tokens with `alg`).
async function mintIdToken(provider, request) {
  const {
    sub, aud, alg = 'RS256', claims = {}, ttl = 300,
  } = request;
  if (!sub || !aud) throw new Error('sub and aud are required');
  const metadata = {
    client_id: aud,
    client_secret: 'ensure-user-id-token-audience-secret',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
    id_token_signed_response_alg: alg,
  };
  const client = new provider.Client(metadata);
  const idToken = new provider.IdToken({ sub }, { client });
  idToken.scope = 'openid';
  for (const [name, value] of Object.entries(claims)) idToken.set(name, value);
  return idToken.issue({ use: 'idtoken', expiresAt: Math.floor(Date.now() / 1000) + ttl });
}

const port = Number(process.env.PORT || 0);
let generation = 0;
let keys = await generateKeys(generation);
let current; // { provider, callback }

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, 'http://127.0.0.1').pathname;
  try {
    if (req.method === 'GET' && path === '/test/health') {
      reply(res, 200, { ok: true });
    } else if (req.method === 'POST' && path === '/test/mint') {
      const accessToken = await mintAccessToken(current.provider, await readJson(req));
      reply(res, 200, { access_token: accessToken });
    } else if (req.method === 'POST' && path === '/test/id_token') {
      const idToken = await mintIdToken(current.provider, await readJson(req));
      reply(res, 200, { id_token: idToken });
    } else if (req.method === 'POST' && path === '/test/rotate') {
      const { keep_old: keepOld = false } = await readJson(req);
      generation += 1;
      const fresh = await generateKeys(generation);
      // The new keys first: the provider signs with the first key of an
      // algorithm.
      keys = keepOld ? [...fresh, ...keys] : fresh;
      current = start(current.provider.issuer);
      reply(res, 200, { kids: keys.map((key) => key.kid) });
    } else {
      current.callback(req, res);
    }
  } catch (error) {
    process.stderr.write(`oidc-provider test server: ${error.stack}\n`);
    reply(res, 500, { error: String(error.message ?? error) });
  }
});

// A new Provider with the current keys. Swapping it in under the same server
// is how keys rotate: a Provider's keystore is fixed at construction.
function start(issuer) {
  const provider = createProvider(issuer, keys);
  provider.on('server_error', (ctx, error) => {
    process.stderr.write(`oidc-provider server_error: ${error.stack}\n`);
  });
  return { provider, callback: provider.callback() };
}

server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  const url = `http://127.0.0.1:${bound}`;
  const advertised = process.env.ISSUER_OVERRIDE || url;
  current = start(advertised);
  process.stdout.write(`${JSON.stringify({ issuer: url, advertised_issuer: advertised, port: bound })}\n`);
});

// The test holds our stdin; when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

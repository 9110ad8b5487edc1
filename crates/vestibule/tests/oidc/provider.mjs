// A real OpenID Connect provider for the single sign-on tests
// (crates/vestibule/tests/gateway_sso.rs), on the `oidc-provider` npm package
// that scripts/oidc-provider.sh installs. Test data only: one client, two users
// (alice in group ops, bob in group dev), the package's development login and
// consent forms, GET /test/set-groups?user=NAME&groups=a,b to change a
// person's groups at the IdP, and GET /test/set-amr?user=NAME&amr=pwd,otp for
// the authentication methods (`amr`) their next login reports.
//
// Environment: OIDC_PROVIDER_DIR (where the package is installed), OIDC_PORT,
// OIDC_REDIRECT_URI (the gateway's callback), OIDC_CLIENT_SECRET.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.OIDC_PROVIDER_DIR;
const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const { default: Provider } = await import(
  pathToFileURL(join(dir, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

const USERS = {
  alice: { email: 'alice@example.test', email_verified: true, preferred_username: 'alice', groups: ['ops'] },
  bob: { email: 'bob@example.test', email_verified: true, preferred_username: 'bob', groups: ['dev'] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'vestibule',
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: [process.env.OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    // amr goes with openid, so every id_token carries it when a login set it.
    openid: ['sub', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['test-only-cookie-key'] },
  async findAccount(ctx, id) {
    const user = USERS[id];
    return user && { accountId: id, claims: async () => ({ sub: id, ...user }) };
  },
});

// The development login form reports no methods; a person's `amr` is added
// to the login result, from which the provider puts it in the id_token.
const interactionFinished = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  const amr = result?.login && USERS[result.login.accountId]?.amr;
  if (amr && amr.length) {
    result.login.amr = amr;
  }
  return interactionFinished(req, res, result, options);
};

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/set-amr') {
    const user = USERS[ctx.query.user];
    if (!user) {
      ctx.status = 404;
      return;
    }
    user.amr = String(ctx.query.amr || '').split(',').filter(Boolean);
    ctx.body = 'ok\n';
    return;
  }
  if (ctx.path === '/test/set-groups') {
    const user = USERS[ctx.query.user];
    if (!user) {
      ctx.status = 404;
      return;
    }
    user.groups = String(ctx.query.groups || '').split(',').filter(Boolean);
    ctx.body = 'ok\n';
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

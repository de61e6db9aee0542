import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { UserRole } from '@jobstream/proto/admin';
import { GlueType } from '@jobstream/proto/types';
import type { Executor } from '../executor-sdk/src/index.js';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { chromiumAvailable, ensureConsoleBuilt, launchChromium, screenshot } from './support/browser.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';

const PASSWORD = 'console-test-password-1';

/**
 * The web console in a real browser (Debian's chromium, headless) against a real admin,
 * PostgreSQL and executor: what an operator sees and can do, and what the server refuses
 * whatever the page sends.
 */
describe.skipIf(!chromiumAvailable())('the web console', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let browser: Browser;
  let consoleUrl: string;
  const executors: Executor[] = [];
  const contexts: BrowserContext[] = [];
  // A group the viewer is granted, and one it is not.
  let grantedGroup: { groupId: string; token: string };
  let otherGroup: { groupId: string; token: string };
  let grantedJobId: string;
  let otherJobId: string;
  let scriptGroupId: string;

  beforeAll(async () => {
    ensureConsoleBuilt();
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { consolePort: 0, consoleHost: '127.0.0.1' });
    consoleUrl = admin.app.consoleUrl!;
    browser = await launchChromium();
    const { client } = admin;
    await client.createUser({
      username: 'alice',
      password: PASSWORD,
      role: UserRole.USER_ROLE_ADMIN,
      groupIds: [],
    });
    grantedGroup = await createGroup(client, 'e2e-granted');
    otherGroup = await createGroup(client, 'e2e-other');
    grantedJobId = await createJob(client, grantedGroup.groupId, 'echo', { description: 'granted echo' });
    otherJobId = await createJob(client, otherGroup.groupId, 'echo', { description: 'other echo' });
    await client.createUser({
      username: 'victor',
      password: PASSWORD,
      role: UserRole.USER_ROLE_VIEWER,
      groupIds: [grantedGroup.groupId],
    });
    const scripts = await client.createExecutorGroup({
      spec: { appName: 'e2e-scripts', title: 'Script runners', scriptKinds: [GlueType.GLUE_TYPE_SHELL] },
    });
    scriptGroupId = scripts.group!.id;
    await client.createUser({
      username: 'sam',
      password: PASSWORD,
      role: UserRole.USER_ROLE_OPERATOR,
      groupIds: [scriptGroupId],
      canEditScripts: true,
    });
    await client.createUser({
      username: 'olga',
      password: PASSWORD,
      role: UserRole.USER_ROLE_OPERATOR,
      groupIds: [grantedGroup.groupId],
    });
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await Promise.all(executors.map(executor => executor.stop()));
    await admin?.stop();
    await database?.drop();
  });

  async function loggedIn(username: string, viewport = { width: 1280, height: 860 }): Promise<Page> {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(consoleUrl);
    await page.getByRole('textbox', { name: 'Username' }).fill(username);
    await page.getByRole('textbox', { name: 'Password' }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Account' }).waitFor();
    return page;
  }

  /** Calls AdminService from the page as the page itself could (the Connect protocol, JSON). */
  function callFromPage(
    page: Page,
    method: string,
    body: unknown,
    headers: Record<string, string> = { 'x-jobstream-console': '1' },
  ): Promise<{ status: number; body: { code?: string; message?: string } }> {
    return page.evaluate(
      async ({ method, body, headers }) => {
        const response = await fetch(`/jobstream.v1.AdminService/${method}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify(body),
        });
        return {
          status: response.status,
          body: (await response.json()) as { code?: string; message?: string },
        };
      },
      { method, body, headers },
    );
  }

  it('serves the page with security headers, and its session only in an HttpOnly SameSite cookie', async () => {
    const response = await fetch(consoleUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    const policy = response.headers.get('content-security-policy') ?? '';
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).toContain("script-src 'self'");
    expect(policy).not.toContain('unsafe-inline');

    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    contexts.push(context);
    const anonymous = await context.newPage();
    await anonymous.goto(consoleUrl);
    await anonymous.getByRole('button', { name: 'Log in' }).waitFor();
    await screenshot(anonymous, 'login');

    const page = await loggedIn('alice');
    const cookies = await page.context().cookies();
    expect(cookies).toEqual([
      expect.objectContaining({ name: 'jobstream-session', httpOnly: true, sameSite: 'Strict' }),
    ]);
    // The token is not readable by the page's scripts.
    expect(await page.evaluate('document.cookie')).toBe('');
  });

  it('lets an admin create a group and a cron job, trigger it, follow its log and kill a long run', async () => {
    const page = await loggedIn('alice');
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();

    // A group, its token shown once.
    await page.getByRole('link', { name: 'Executors & groups' }).click();
    await page.getByRole('button', { name: 'New group' }).click();
    await page.getByRole('textbox', { name: 'App name' }).fill('e2e-orders');
    await page.getByRole('textbox', { name: 'Title' }).fill('Order workers');
    await page.getByRole('button', { name: 'Create group' }).click();
    const token = (await page.getByTestId('secret').textContent()) ?? '';
    expect(token).toMatch(/^\S{20,}$/);
    await expect.poll(() => page.getByText('shown only this once').isVisible()).toBe(true);
    executors.push(
      await startFixtureExecutor({
        adminAddresses: [admin.address],
        appName: 'e2e-orders',
        accessToken: token,
        instanceName: 'orders-1',
      }),
    );
    const card = page.getByTestId('group-e2e-orders');
    await card.getByText('1 online').waitFor();
    await card.getByRole('cell', { name: 'orders-1' }).waitFor();
    // Its load as of its beats, event-loop lag included.
    await card.getByRole('columnheader', { name: 'Event-loop lag' }).waitFor();
    await expect
      .poll(async () => (await card.getByRole('cell', { name: /^\d+ ms$/ }).count()) > 0)
      .toBe(true);
    await screenshot(page, 'executors');

    // A job with a cron schedule: the preview shows the next fires in the job's zone.
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByRole('button', { name: 'New job' }).click();
    const form = page.getByRole('dialog', { name: 'New job' });
    await form.getByRole('combobox', { name: 'Executor group' }).click();
    await page.getByRole('option', { name: /e2e-orders/ }).click();
    await form.getByRole('textbox', { name: 'Handler' }).fill('steps');
    await form.getByRole('textbox', { name: 'Description' }).fill('Nightly steps');
    await form.getByRole('textbox', { name: 'Cron expression' }).fill('0 30 2 * * ?');
    await form.getByRole('textbox', { name: 'Time zone' }).fill('Asia/Tokyo');
    const fires = form.getByTestId('next-fires');
    await fires.getByText('Next fires (Asia/Tokyo)').waitFor();
    await expect.poll(() => fires.getByRole('listitem').count()).toBe(5);
    expect(await fires.getByRole('listitem').first().textContent()).toMatch(/02:30:00/);
    // Live validation: a broken expression is refused under the field before saving.
    await form.getByRole('textbox', { name: 'Cron expression' }).fill('0 61 2 * * ?');
    await form
      .getByText(/minute/i)
      .first()
      .waitFor();
    await form.getByRole('textbox', { name: 'Cron expression' }).fill('0 30 2 * * ?');
    await fires.getByRole('listitem').first().waitFor();
    await screenshot(page, 'job-form');
    await form.getByRole('button', { name: 'Create job' }).click();
    await form.waitFor({ state: 'hidden' });
    const row = page.getByRole('row').filter({ hasText: 'Nightly steps' });
    await row.waitFor();
    await screenshot(page, 'jobs');

    // Trigger with a parameter: the log page follows the run and its executor log rolls.
    await row.getByRole('button', { name: /^Actions for job/ }).click();
    await page.getByRole('menuitem', { name: 'Trigger…' }).click();
    const trigger = page.getByRole('dialog', { name: /Trigger job/ });
    await trigger.getByRole('textbox', { name: 'Parameter' }).fill('6:600');
    await trigger.getByRole('button', { name: 'Trigger' }).click();
    await page.waitForURL(/\/logs\/\d+$/);
    const executorLog = page.getByTestId('executor-log');
    await executorLog.getByText('step 1 of 6').waitFor();
    // Seen while the run was still going: the log rolls in, it is not read once at the end.
    const partial = (await executorLog.textContent()) ?? '';
    expect(partial).not.toContain('step 6 of 6');
    await executorLog.getByText('step 6 of 6').waitFor();
    await page.getByTestId('log-status').getByText('succeeded').waitFor();
    await expect.poll(() => page.getByTestId('handle-message').textContent()).toBe('done 6 steps');
    await screenshot(page, 'log-detail');

    // A long run, killed from its log page.
    const sleepJobId = await createJob(admin.client, (await groupIdOf('e2e-orders'))!, 'sleep', {
      description: 'Long sleeper',
      param: '600000',
    });
    await page.goto(`${consoleUrl}jobs`);
    const sleeper = page.getByTestId(`job-${sleepJobId}`);
    await sleeper.getByRole('button', { name: /^Actions for job/ }).click();
    await page.getByRole('menuitem', { name: 'Trigger…' }).click();
    await page
      .getByRole('dialog', { name: /Trigger job/ })
      .getByRole('button', { name: 'Trigger' })
      .click();
    await page.waitForURL(/\/logs\/\d+$/);
    await page.getByTestId('executor-log').getByText('sleeping').waitFor();
    await page.getByRole('button', { name: 'Kill run' }).click();
    await page.getByTestId('log-outcome').getByText('KILLED').waitFor();
    await page.getByTestId('log-status').getByText('failed').waitFor();

    await page.getByRole('link', { name: 'Logs' }).first().click();
    await page.getByRole('heading', { name: 'Logs' }).waitFor();
    await screenshot(page, 'logs');
    await page.getByRole('link', { name: 'Users & API tokens' }).click();
    await page.getByRole('cell', { name: 'victor' }).waitFor();
    await screenshot(page, 'users');

    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByText('Recent failures').waitFor();
    await page
      .getByRole('link', { name: /^#\d+$/ })
      .first()
      .waitFor();
    await screenshot(page, 'dashboard');

    // A phone's width: the navigation folds into a menu button.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${consoleUrl}jobs`);
    await page.getByRole('button', { name: 'Menu' }).waitFor();
    await screenshot(page, 'jobs-phone');
  });

  async function groupIdOf(appName: string): Promise<string | undefined> {
    const { groups } = await admin.client.listExecutorGroups({ appNameContains: appName });
    return groups.find(group => group.appName === appName)?.id;
  }

  it("shows the API's field error next to the field", async () => {
    const page = await loggedIn('alice');
    await page.goto(`${consoleUrl}jobs`);
    await page.getByRole('button', { name: 'New job' }).click();
    const form = page.getByRole('dialog', { name: 'New job' });
    await form.getByRole('textbox', { name: 'Handler' }).fill('echo');
    await form.getByRole('textbox', { name: 'Description' }).fill('bad timeout');
    const timeout = form.getByRole('textbox', { name: 'Timeout (seconds, 0: none)' });
    await timeout.fill('-5');
    await form.getByRole('button', { name: 'Create job' }).click();
    // Mantine links the error to its input (aria-describedby) and marks the input invalid.
    await expect.poll(() => timeout.getAttribute('aria-invalid')).toBe('true');
    const describedBy = (await timeout.getAttribute('aria-describedby')) ?? '';
    const error = page.locator(`[id="${describedBy.split(' ').find(id => id.endsWith('-error'))}"]`);
    expect(await error.textContent()).toBe('must be from 0 to 604800, got -5');
    await screenshot(page, 'field-error');
  });

  it('shows a viewer no action its role forbids, and the server refuses the ones it forges', async () => {
    const page = await loggedIn('victor');
    await page.waitForURL(/\/jobs$/);
    const row = page.getByTestId(`job-${grantedJobId}`);
    await row.waitFor();
    // Only the granted group's jobs are listed.
    expect(await page.getByTestId(`job-${otherJobId}`).count()).toBe(0);
    await expect.poll(() => page.getByRole('button', { name: 'New job' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Users & API tokens' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Dashboard' }).count()).toBe(0);
    await row.getByRole('button', { name: /^Actions for job/ }).click();
    const items = await page.getByRole('menuitem').allTextContents();
    expect(items).toEqual(['Logs']);
    await page.keyboard.press('Escape');
    await page.getByRole('link', { name: 'Executors & groups' }).click();
    await page.getByTestId('group-e2e-granted').waitFor();
    expect(await page.getByRole('button', { name: 'New group' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Rotate token' }).count()).toBe(0);

    // Forged from the page with the viewer's own session: refused by the server.
    const trigger = await callFromPage(page, 'TriggerJob', { jobId: grantedJobId });
    expect(trigger.status).toBe(403);
    expect(trigger.body.message).toMatch(/may not change job \d+: viewers only read/);
    const other = await callFromPage(page, 'GetJob', { id: otherJobId });
    expect(other.body).toMatchObject({ code: 'permission_denied' });
    expect(other.body.message).toContain(`is not granted executor group ${otherGroup.groupId}`);
  });

  it("refuses an operator's forged request to another group's job, and calls without the console's CSRF header", async () => {
    const page = await loggedIn('olga');
    await page.getByTestId(`job-${grantedJobId}`).waitFor();
    const forged = await callFromPage(page, 'TriggerJob', { jobId: otherJobId });
    expect(forged.status).toBe(403);
    expect(forged.body.message).toContain(`is not granted executor group ${otherGroup.groupId}`);
    expect(forged.body.message).not.toContain('viewers');
    const { logs } = await admin.client.listLogs({ jobId: otherJobId });
    expect(logs).toEqual([]);

    // The cookie alone authenticates nothing: a call must carry the console's header.
    const noHeader = await callFromPage(page, 'TriggerJob', { jobId: grantedJobId }, {});
    expect(noHeader.status).toBe(403);
    expect(noHeader.body.message).toContain('x-jobstream-console');
    // Another origin is refused, whatever it sends (a page elsewhere, or a rebinding host name).
    const request = page.context().request;
    const crossSite = await request.post(`${consoleUrl}jobstream.v1.AdminService/TriggerJob`, {
      headers: {
        'content-type': 'application/json',
        'x-jobstream-console': '1',
        origin: 'https://evil.example',
      },
      data: { jobId: grantedJobId },
    });
    expect(crossSite.status()).toBe(403);
    expect(await crossSite.text()).toContain('cross-origin request from https://evil.example refused');
    expect((await admin.client.listLogs({ jobId: grantedJobId })).logs).toEqual([]);
  });

  it('edits a script job with a highlighting editor: a second version, their diff, and restoring the first', async () => {
    const page = await loggedIn('sam');
    const cspViolations: string[] = [];
    page.on('console', message => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    await page.goto(`${consoleUrl}jobs`);
    await page.getByRole('button', { name: 'New job' }).click();
    const form = page.getByRole('dialog', { name: 'New job' });
    await form.getByRole('combobox', { name: 'Executor group' }).click();
    await page.getByRole('option', { name: /e2e-scripts/ }).click();
    await form.getByRole('combobox', { name: 'Runs' }).click();
    await page.getByRole('option', { name: 'Shell script' }).click();
    // A script job names no handler.
    expect(await form.getByRole('textbox', { name: 'Handler' }).count()).toBe(0);
    await form.getByRole('textbox', { name: 'Description' }).fill('Nightly cleanup script');
    const source = form.getByRole('textbox', { name: 'Script source' });
    await source.click();
    await page.keyboard.type('echo "first" $1');
    await form.getByRole('textbox', { name: 'Version remark' }).fill('the first one');
    // Highlighted for its kind: the shell mode marks the builtin and the string.
    await expect.poll(() => source.locator('span').count()).toBeGreaterThan(1);
    await form.getByRole('button', { name: 'Create job' }).click();
    await form.waitFor({ state: 'hidden' });
    const row = page.getByRole('row').filter({ hasText: 'Nightly cleanup script' });
    await row.waitFor();
    const jobId = (await row.getAttribute('data-testid'))!.replace('job-', '');
    const { job: created } = await admin.client.getJob({ id: jobId });
    expect(created!.spec).toMatchObject({
      glueType: GlueType.GLUE_TYPE_SHELL,
      glueSource: 'echo "first" $1',
    });

    // A second version.
    await row.getByRole('button', { name: /^Actions for job/ }).click();
    await page.getByRole('menuitem', { name: 'Edit…' }).click();
    const edit = page.getByRole('dialog', { name: `Edit job ${jobId}` });
    const editor = edit.getByRole('textbox', { name: 'Script source' });
    await editor.getByText('first').waitFor();
    await editor.click();
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('echo "second" $1');
    await edit.getByRole('textbox', { name: 'Version remark' }).fill('the second one');
    await edit.getByRole('button', { name: 'Save' }).click();
    await edit.waitFor({ state: 'hidden' });

    // The version list, and the diff between the two (by default: what the newest changed).
    await row.getByRole('button', { name: /^Actions for job/ }).click();
    await page.getByRole('menuitem', { name: 'Edit…' }).click();
    const versions = edit.getByTestId('script-versions');
    await versions.getByText('the second one').waitFor();
    await versions.getByText('the first one').waitFor();
    expect(await versions.getByRole('cell', { name: 'sam' }).count()).toBe(2);
    await versions.getByRole('button', { name: 'Show diff' }).click();
    const diff = versions.getByTestId('script-diff');
    await diff.getByText('"first"').waitFor();
    await diff.getByText('"second"').waitFor();
    // The merge view marks the changed lines on both sides.
    expect(await diff.locator('.cm-changedLine').count()).toBeGreaterThanOrEqual(2);
    await screenshot(page, 'script-versions');

    // Restore the first: it becomes the current script again, as a third version.
    const { versions: stored } = await admin.client.listJobScriptVersions({ jobId, includeSource: false });
    const first = stored.at(-1)!;
    await versions.getByRole('button', { name: `Restore version ${first.id}` }).click();
    await versions.getByText(`restored from #${first.id}`).waitFor();
    await editor.getByText('first').waitFor();
    const { job: restored } = await admin.client.getJob({ id: jobId });
    expect(restored!.spec!.glueSource).toBe('echo "first" $1');
    const after = await admin.client.listJobScriptVersions({ jobId, includeSource: false });
    expect(after.versions).toHaveLength(3);
    expect(after.versions[0]).toMatchObject({ restoredFromId: first.id, author: 'sam' });
    expect(cspViolations).toEqual([]);
  });

  it('sends a user whose session ended back to the login page, saying so', async () => {
    const page = await loggedIn('olga');
    await page.getByTestId(`job-${grantedJobId}`).waitFor();
    // Revoke every session of the user from outside (what an expiry looks like to the page).
    const { users } = await admin.client.listUsers({});
    const olga = users.find(user => user.username === 'olga')!;
    await admin.client.updateUser({
      id: olga.id,
      password: 'a-brand-new-password-2',
      groupIds: [],
      replaceGroupIds: false,
      role: 0,
    });
    await page.getByRole('link', { name: 'Logs' }).click();
    await waitFor(
      async () => ((await page.getByText('Your session has ended').count()) > 0 ? true : undefined),
      {
        what: 'the session-ended notice',
      },
    );
    await page.getByRole('button', { name: 'Log in' }).waitFor();
  });
});

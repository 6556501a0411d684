// GET /docs in Chromium (API.md: "a browsable API reference"): the page renders the OpenAPI
// document under its strict CSP with nothing from another origin, shows the routes by group and
// links the AsyncAPI document; "Try it out" on GET /health calls this server and shows its answer.
// Any console error (a CSP violation shows there), failed request or 4xx/5xx fails the test.
import { join } from 'node:path'
import t from 'tap'
import { backends } from '../helpers/backends.js'
import { chromiumMissing, launchBrowser, screenshotDir, watchPage } from '../helpers/browser.js'
import { startTestServer } from '../helpers/server.js'

const TITLE = 'the docs page renders the API in Chromium'
const missing = chromiumMissing()
if (missing !== null) {
  t.test(TITLE, { skip: missing }, async () => {})
} else {
  t.test(TITLE, async (t) => {
    const [backend] = backends().run
    if (backend === undefined) throw new Error('no backend')
    const browser = await launchBrowser(t)
    const { baseUrl } = await startTestServer(t, backend)
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    t.teardown(async () => await context.close())
    const page = await context.newPage()
    const problems = watchPage(page, 'docs')
    const origins = new Set<string>()
    page.on('request', (request) => { origins.add(new URL(request.url()).origin) })

    await page.goto(`${baseUrl}/docs`)
    const paths = page.locator('.opblock-summary-path')
    t.ok(await paths.first().waitFor({ timeout: 20_000 }).then(() => true, () => false), 'the operations render')
    const shown = await paths.allInnerTexts()
    for (const path of ['/auth/login', '/rooms', '/rooms/{id}/messages', '/rooms/{id}/members/{userId}', '/ready']) {
      t.ok(shown.some((text) => text.replace(/\u200b/g, '').trim() === path), `shows ${path}`)
    }
    t.ok(shown.length >= 20, `every operation is there (${shown.length})`)
    t.ok(await page.getByRole('heading', { name: /Chat backend REST API/ }).isVisible(), 'the title')
    t.equal(await page.locator('.info').getByRole('link', { name: '/docs/asyncapi.json' }).getAttribute('href'), '/docs/asyncapi.json', 'the description links to the AsyncAPI document')
    t.ok(await page.locator('.opblock-tag', { hasText: 'read positions' }).isVisible(), 'operations grouped by tag')

    // Try it out: Swagger UI calls the server itself (CSP connect-src 'self').
    await page.locator('.opblock-summary', { hasText: '/health' }).first().click()
    await page.getByRole('button', { name: 'Try it out' }).click()
    await page.getByRole('button', { name: 'Execute' }).click()
    const answer = page.locator('.live-responses-table tr.response .response-col_status').first()
    t.ok(await answer.waitFor({ timeout: 10_000 }).then(() => true, () => false), 'Execute shows the answer')
    t.match(await answer.innerText(), /200/, 'GET /health answered 200 in the page')
    t.match(await page.locator('.live-responses-table .microlight').first().innerText(), /"status": "ok"/, 'with its body')

    await page.screenshot({ path: join(screenshotDir(t), 'docs-page.png') })
    t.same([...origins], [baseUrl], 'nothing is loaded from another origin')
    t.same(problems, [], 'no console error, CSP violation or failed request')
  })
}

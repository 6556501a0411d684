import type { IncomingMessage } from 'node:http'

export interface ApiResponse<T = any> {
  readonly status: number
  readonly headers: Headers
  readonly body: T
  readonly text: string
}

export interface RequestOptions {
  readonly token?: string
  /** Sent as JSON. */
  readonly json?: unknown
  /** Sent as is (for malformed bodies); set `contentType` to go with it. */
  readonly raw?: string | Buffer
  readonly contentType?: string
  readonly headers?: Record<string, string>
}

export interface ApiClient {
  request<T = any> (method: string, path: string, options?: RequestOptions): Promise<ApiResponse<T>>
  /** Registers and logs in a fresh user; returns its id, name and token. */
  user (prefix?: string): Promise<{ id: string, username: string, token: string }>
}

let counter = 0

export function createClient (baseUrl: string): ApiClient {
  const request = async <T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> => {
    const headers: Record<string, string> = { ...options.headers }
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
    let body: string | Buffer | undefined
    if (options.json !== undefined) {
      body = JSON.stringify(options.json)
      headers['content-type'] = 'application/json'
    } else if (options.raw !== undefined) {
      body = options.raw
      if (options.contentType !== undefined) headers['content-type'] = options.contentType
    }
    const response = await fetch(baseUrl + path, { method, headers, body })
    const text = await response.text()
    let parsed: unknown = null
    try {
      parsed = text === '' ? null : JSON.parse(text)
    } catch {
      parsed = text
    }
    return { status: response.status, headers: response.headers, body: parsed as T, text }
  }

  return {
    request,
    async user (prefix = 'user') {
      const username = `${prefix}_${process.pid}_${++counter}`.slice(0, 32)
      const password = 'correct-horse-battery'
      const registered = await request<{ id: string }>('POST', '/auth/register', { json: { username, password } })
      if (registered.status !== 201) throw new Error(`register failed: ${registered.status} ${registered.text}`)
      const login = await request<{ token: string }>('POST', '/auth/login', { json: { username, password } })
      if (login.status !== 200) throw new Error(`login failed: ${login.status} ${login.text}`)
      return { id: registered.body.id, username, token: login.body.token }
    }
  }
}

/** Reads a Node response's body: parsed as JSON when it is JSON, else the text. */
export async function readBody (res: IncomingMessage): Promise<unknown> {
  let text = ''
  res.setEncoding('utf8')
  for await (const chunk of res) text += chunk as string
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

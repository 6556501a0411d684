import fastifyCors from '@fastify/cors'
import fp from 'fastify-plugin'

/** Lets browser apps on other origins call the REST API (tokens travel in headers, never cookies). */
export default fp(async (fastify) => {
  const { corsOrigins } = fastify.config.http
  if (corsOrigins !== '*' && corsOrigins.length === 0) return
  await fastify.register(fastifyCors, {
    origin: corsOrigins === '*' ? '*' : [...corsOrigins],
    methods: ['GET', 'HEAD', 'POST', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type'],
    exposedHeaders: ['retry-after'],
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['config'] })

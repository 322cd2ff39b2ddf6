// The graphql-yoga baseline of bench/live_fanout.py: gql-api's postEvents subscription and
// createPost, with yoga's own pub/sub (createPubSub, in process), served over
// graphql-transport-ws as yoga's docs integrate graphql-ws: ws's WebSocketServer on the
// HTTP server and graphql-ws's useServer running each operation through yoga's envelop
// (its parse and validation caches). Queries and mutations over HTTP are yoga's own.
import { createServer } from "node:http";
import { useServer } from "graphql-ws/use/ws";
import { createPubSub, createSchema, createYoga, filter, pipe } from "graphql-yoga";
import { WebSocketServer } from "ws";

const typeDefs = /* GraphQL */ `
  enum PostEventKind { CREATED UPDATED DELETED }
  type Profile { userId: ID! nickname: String }
  type Post { id: ID! content: String! tags: [String!]! author: Profile! }
  type PostEvent { kind: PostEventKind! postId: ID! version: Int! post: Post }
  input CreatePostInput { content: String! tags: [String!] }
  type Query { hello: String! }
  type Mutation { createPost(input: CreatePostInput!): Post! }
  type Subscription { postEvents(tag: String, authorId: ID): PostEvent! }
`;

const pubSub = createPubSub();
let made = 0;

const resolvers = {
  Query: { hello: () => "hello" },
  Mutation: {
    createPost: (_root, { input }) => {
      made += 1;
      const tags = [...new Set((input.tags || []).map((t) => t.trim().toLowerCase()))];
      const post = { id: `new${made}`, content: input.content, tags, authorId: "bench" };
      pubSub.publish("postEvents", { kind: "CREATED", postId: post.id, version: 1, post });
      return post;
    },
  },
  Subscription: {
    postEvents: {
      subscribe: (_root, { tag, authorId }) => {
        const wanted = tag == null ? null : tag.trim().toLowerCase();
        return pipe(
          pubSub.subscribe("postEvents"),
          filter(
            (event) =>
              (wanted == null || event.post.tags.includes(wanted)) &&
              (authorId == null || authorId === event.post.authorId),
          ),
        );
      },
      resolve: (event) => event,
    },
  },
  Post: { author: (post) => ({ userId: post.authorId, nickname: null }) },
};

const yoga = createYoga({
  schema: createSchema({ typeDefs, resolvers }),
  graphiql: false,
  logging: false,
});
const server = createServer(yoga);
const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });

useServer(
  {
    execute: (args) => args.rootValue.execute(args),
    subscribe: (args) => args.rootValue.subscribe(args),
    onSubscribe: async (ctx, _id, params) => {
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      const args = {
        schema,
        operationName: params.operationName,
        document: parse(params.query),
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe },
      };
      const errors = validate(args.schema, args.document);
      if (errors.length) return errors;
      return args;
    },
  },
  wsServer,
);
server.listen(Number(process.argv[2]), "127.0.0.1");
